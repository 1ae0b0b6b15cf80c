//! Entry points for the fuzz targets in `fuzz/` (not an API): each takes arbitrary bytes and
//! must never panic, whatever they hold.

use bytes::BytesMut;
use rmcp::{model::ClientJsonRpcMessage, transport::async_rw::JsonRpcMessageCodec};
use tokio_util::codec::Decoder;

/// The tool names, in the order the first input byte picks them.
const TOOLS: [&str; 16] = [
    "get_context",
    "save_conversation",
    "get_conversation_history",
    "get_conversation",
    "delete_conversation",
    "set_preference",
    "get_preferences",
    "delete_preference",
    "invalidate_cache",
    "index_workspace",
    "index_document",
    "index_status",
    "search_documents",
    "create_backup",
    "list_backups",
    "health",
];

/// The first byte picks a tool; the rest, if it is JSON, is decoded as that tool's arguments.
pub fn tool_arguments(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(arguments) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let tool = TOOLS[usize::from(pick) % TOOLS.len()];
    if let Err(message) = crate::mcp::decode_tool_arguments(tool, arguments) {
        assert!(!message.is_empty());
    }
}

/// Feeds the bytes to the JSON-RPC line framing of stdio in pieces, as a pipe delivers them,
/// and each line to the guard that answers lone surrogates.
pub fn line_framing(data: &[u8]) {
    for line in data.split(|byte| *byte == b'\n') {
        crate::mcp::guard_answers(line);
    }
    let mut codec = JsonRpcMessageCodec::<ClientJsonRpcMessage>::new_with_max_length(1 << 12);
    let mut buffer = BytesMut::new();
    for piece in data.chunks(97) {
        buffer.extend_from_slice(piece);
        while let Ok(Some(_message)) = codec.decode(&mut buffer) {}
        // Bounded: the codec never keeps more than a line's worth plus one piece.
        assert!(
            buffer.len() <= (1 << 12) + 2 * 97,
            "{} bytes kept",
            buffer.len()
        );
    }
}

/// Text as documents and messages bring it: the index tokenizers, passage cutting and the
/// token counter.
pub fn text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let words = crate::index::code_tokens(&text);
    assert!(words.iter().all(|token| token.offset_to <= text.len()));
    // Every window of the text is found by substring search's candidate filter: its folded
    // form is in the folded text and the text's gram filters admit it.
    let folded = crate::index::fold(&text);
    let mut group = crate::index::GroupFilter::default();
    group.add(&text);
    let mut passage = crate::index::PassageFilter::default();
    passage.add(&text);
    let boundaries: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    for (&from, &to) in boundaries.iter().zip(boundaries.iter().skip(7)).step_by(5) {
        let window = &text[from..to];
        assert!(folded.contains(&crate::index::fold(window)));
        assert!(crate::index::Needle::new(window).found_in(&text));
        if let Some(probe) = crate::index::GroupProbe::of(window) {
            assert!(probe.admits(&group));
        }
        if let Some(probe) = crate::index::PassageProbe::of(window) {
            assert!(probe.admits(&passage));
        }
    }
    // The needle's fast path agrees with folding, found or not.
    let head: String = text.chars().take(4).collect();
    for needle in [head.as_str(), "ab", "Zq", "k"] {
        let expected = folded.contains(&crate::index::fold(needle));
        assert_eq!(crate::index::Needle::new(needle).found_in(&text), expected);
    }
    let passages = crate::index::chunk_lines(&text, 64, crate::index::estimate_tokens);
    assert!(
        passages
            .iter()
            .all(|passage| passage.start_line <= passage.end_line)
    );
    crate::tokens::count(&text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that once mattered (and crashes the fuzzers find, as they are found).
    const SEEDS: &[&[u8]] = &[
        b"",
        b"\x01{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        b"\x00{\"query\":\"q\",\"max_tokens\":18446744073709551615}",
        b"\x0c{\"query\":\"\\u0000\",\"limit\":-1,\"mode\":\"nope\"}",
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n\xef\xbb\xbf{\"jsonrpc\"\n\n\xff\xfe\n",
        b"{\"id\":1,\"method\":\"tools/call\",\"params\":{\"\\udc00\":\"\\ud800\\u\"}}\n\\u",
        "caf\u{e9} cafe\u{301} \u{202e}x\u{0} 🦀_parse_optional HTTPServer2\n\n\tlong_identifier_".as_bytes(),
    ];

    #[test]
    fn the_fuzz_entry_points_take_the_seeds() {
        let long_line = [b'x'; 10_000];
        for seed in SEEDS.iter().copied().chain([&long_line[..]]) {
            tool_arguments(seed);
            line_framing(seed);
            text(seed);
        }
    }
}
