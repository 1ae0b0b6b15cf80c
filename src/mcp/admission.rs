//! Lines the stdio guard answers itself because rmcp would drop them or answer them without
//! their id: lines that are not JSON (`-32700`, id null, as JSON-RPC 2.0 asks), messages of
//! a wrong shape (`-32600` with the request's id), `tools/call` whose `params` do not fit
//! (`-32602`), and lines holding so many JSON elements that building them would take
//! hundreds of MiB (refused from a scan of the raw bytes, before any value is built).

use std::sync::Arc;

use rmcp::{
    RoleServer,
    model::{ClientRequest, ErrorData, JsonRpcMessage, NumberOrString, ServerJsonRpcMessage},
    service::RxJsonRpcMessage,
};
use serde_json::Value;

/// JSON elements (keys and array items) a message may hold. Real requests stay far below
/// (a save of 1,000 messages holds about 10,000); 1.5 million small keys in one 15 MiB line
/// would take about 750 MiB to build.
pub const MAX_ELEMENTS: usize = 200_000;

/// The answer to a line holding too many elements to build, or None.
pub(super) fn answer_for_oversized(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    answer_for_too_many_elements(trimmed(line))
}

/// The answer to a line rmcp would drop or answer without its id, or None to pass it on.
pub(super) fn answer_for_malformed(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    let line = trimmed(line);
    if line.is_empty() {
        return None;
    }
    match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(line) {
        Ok(message) => answer_for_unfit_params(&message),
        Err(error) if error.is_syntax() || error.is_eof() => {
            tracing::debug!(%error, "answered a line that is not JSON");
            Some(ServerJsonRpcMessage::error(
                ErrorData::parse_error(format!("the line is not JSON: {error}"), None),
                None,
            ))
        }
        Err(error) => answer_for_invalid_message(line, &error),
    }
}

/// The line without its newline, carriage return and byte order mark, as rmcp reads it.
fn trimmed(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.strip_prefix("\u{feff}".as_bytes()).unwrap_or(line)
}

/// Refuses a line holding more than [`MAX_ELEMENTS`] elements, counted on the raw bytes.
fn answer_for_too_many_elements(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    // Each element takes at least one byte: shorter lines cannot pass the limit.
    if line.len() <= MAX_ELEMENTS || count_elements(line) <= MAX_ELEMENTS {
        return None;
    }
    tracing::warn!(
        bytes = line.len(),
        "refused a message with too many JSON elements"
    );
    let problem = format!(
        "the message holds more than {MAX_ELEMENTS} JSON elements (object keys and array \
         items); {MAX_ELEMENTS} is the limit per message"
    );
    Some(ServerJsonRpcMessage::error(
        ErrorData::invalid_request(problem, None),
        top_level_id(line),
    ))
}

/// Commas and colons outside strings: one per key and per array item beyond the first.
fn count_elements(line: &[u8]) -> usize {
    let mut count = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in line {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b',' | b':' => count += 1,
            _ => {}
        }
    }
    count
}

/// The request's id, read from the raw bytes of a line too big to parse: the value of the
/// `"id"` key at the top level when it is a number or a string.
fn top_level_id(line: &[u8]) -> Option<NumberOrString> {
    let mut depth = 0usize;
    let mut at = 0;
    while at < line.len() {
        match line[at] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(line, at)?;
                if depth == 1
                    && &line[at..end] == b"\"id\""
                    && let Some(id) = id_after_key(&line[end..])
                {
                    return Some(id);
                }
                at = end;
                continue;
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// The index just past the string that opens at `start`.
fn string_end(line: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    while at < line.len() {
        match line[at] {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
    None
}

/// The scalar after `: ` in `rest`, as an id.
fn id_after_key(rest: &[u8]) -> Option<NumberOrString> {
    let rest = rest.trim_ascii_start().strip_prefix(b":")?;
    let end = match rest.trim_ascii_start().first()? {
        b'"' => {
            let offset = rest.len() - rest.trim_ascii_start().len();
            string_end(rest, offset)?
        }
        _ => rest
            .iter()
            .position(|byte| matches!(byte, b',' | b'}'))
            .unwrap_or(rest.len()),
    };
    usable_id(&serde_json::from_slice(&rest[..end]).ok()?)
}

/// An id an answer can carry: an integer or a string.
fn usable_id(id: &Value) -> Option<NumberOrString> {
    match id {
        Value::Number(number) => number.as_i64().map(NumberOrString::Number),
        Value::String(text) => Some(NumberOrString::String(Arc::from(text.as_str()))),
        _ => None,
    }
}

/// Well-formed JSON that is not a valid message: `-32600` with the request's id. Lines with
/// no usable id (notifications, a null or fractional id) go on to rmcp, which ignores
/// unknown notifications and answers the rest without an id.
fn answer_for_invalid_message(
    line: &[u8],
    error: &serde_json::Error,
) -> Option<ServerJsonRpcMessage> {
    let message: Value = serde_json::from_slice(line).ok()?;
    let id = usable_id(message.get("id")?)?;
    if message.get("method").and_then(Value::as_str) == Some("tools/call")
        && let Some(problem) = call_params_problem(message.get("params"))
    {
        return Some(ServerJsonRpcMessage::error(
            ErrorData::invalid_params(problem, None),
            Some(id),
        ));
    }
    tracing::debug!(%error, "answered an invalid request");
    Some(ServerJsonRpcMessage::error(
        ErrorData::invalid_request(format!("invalid request: {error}"), None),
        Some(id),
    ))
}

/// A `tools/call` whose params rmcp could not read as such (it takes it for an unknown
/// method and would answer "method not found"): `-32602` naming the field.
fn answer_for_unfit_params(message: &RxJsonRpcMessage<RoleServer>) -> Option<ServerJsonRpcMessage> {
    let JsonRpcMessage::Request(request) = message else {
        return None;
    };
    let ClientRequest::CustomRequest(custom) = &request.request else {
        return None;
    };
    if custom.method != "tools/call" {
        return None;
    }
    let problem = call_params_problem(custom.params.as_ref())
        .unwrap_or_else(|| "params do not fit tools/call".to_owned());
    Some(ServerJsonRpcMessage::error(
        ErrorData::invalid_params(problem, None),
        Some(request.id.clone()),
    ))
}

/// What is wrong with the params of a `tools/call`, naming the field.
fn call_params_problem(params: Option<&Value>) -> Option<String> {
    let Some(Value::Object(params)) = params else {
        return Some("params must be an object with the tool's name and arguments".to_owned());
    };
    if !params.get("name").is_some_and(Value::is_string) {
        return Some("params.name must be a string naming the tool".to_owned());
    }
    match params.get("arguments") {
        None | Some(Value::Object(_)) | Some(Value::Null) => None,
        Some(other) => Some(format!(
            "params.arguments must be an object holding the tool's arguments by name, not {}",
            kind_of(other)
        )),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Option<Value> {
        answer_for_oversized(line.as_bytes())
            .or_else(|| answer_for_malformed(line.as_bytes()))
            .map(|message| serde_json::to_value(message).unwrap())
    }

    #[test]
    fn valid_messages_and_empty_lines_pass() {
        assert!(answer(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_none());
        assert!(answer("\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n").is_none());
        assert!(answer(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).is_none());
        assert!(answer("\r\n").is_none());
        let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"health","arguments":{}}}"#;
        assert!(answer(call).is_none());
    }

    #[test]
    fn a_line_that_is_not_json_gets_a_parse_error_with_a_null_id() {
        let answer = answer("this is not json").unwrap();
        assert_eq!(answer["error"]["code"], -32700);
        assert_eq!(answer["id"], Value::Null, "{answer}");
    }

    #[test]
    fn an_invalid_request_keeps_its_id() {
        let answer = answer(r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#).unwrap();
        assert_eq!(answer["error"]["code"], -32600);
        assert_eq!(answer["id"], 5);
    }

    #[test]
    fn an_invalid_line_without_a_usable_id_is_left_to_rmcp() {
        assert!(answer(r#"{"jsonrpc":"1.0","id":1.5,"method":"ping"}"#).is_none());
        assert!(answer(r#"{"jsonrpc":"1.0","method":"notifications/x"}"#).is_none());
    }

    #[test]
    fn tool_call_arguments_that_are_not_an_object_are_invalid_params() {
        let line = r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"health","arguments":7}}"#;
        let answer = answer(line).unwrap();
        assert_eq!(answer["error"]["code"], -32602);
        assert_eq!(answer["id"], "c");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("params.arguments must be an object"),
            "{message}"
        );
    }

    #[test]
    fn elements_are_counted_outside_strings_only() {
        assert_eq!(count_elements(br#"{"a":1,"b":[1,2,3]}"#), 5);
        assert_eq!(count_elements(br#"{"a":",:,\":"}"#), 1);
    }

    #[test]
    fn a_line_with_too_many_elements_is_refused_with_its_id() {
        let keys: Vec<String> = (0..MAX_ELEMENTS)
            .map(|key| format!("\"k{key}\":0"))
            .collect();
        let line = format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"x","arguments":{{{}}}}},"id" : "big"}}"#,
            keys.join(",")
        );
        let answer = answer(&line).unwrap();
        assert_eq!(answer["error"]["code"], -32600);
        assert_eq!(answer["id"], "big");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("200000"), "{message}");
    }

    #[test]
    fn the_id_is_found_at_the_top_level_only() {
        let line = br#"{"params":{"id":1,"s":"\"id\""},"method":"id","id":42}"#;
        assert_eq!(top_level_id(line), Some(NumberOrString::Number(42)));
        assert_eq!(top_level_id(br#"{"params":{"id":1}}"#), None);
    }
}
