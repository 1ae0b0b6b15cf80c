//! The stdio transport: rmcp's line framing, with a guard in front of it for the lines rmcp
//! would drop without an answer or answer without their id.
//!
//! A JSON string may escape a lone UTF-16 surrogate (`"\ud800"`; Python's `json.dumps` writes
//! one for a string cut inside a surrogate pair). No Rust string can hold it, so serde_json
//! rejects the whole line as a syntax error and rmcp ignores it, id and all: the client's call
//! would hang until its timeout. The guard takes such lines out of the stream and answers
//! them: a `tools/call` with a tool error naming the field (the model can fix that), any other
//! request with `-32602`. It answers the lines [`admission`](super::admission) refuses too
//! (not JSON, invalid messages, too many elements). Every other line passes through unchanged.
//!
//! The session ends when stdin ends or stdout breaks (a client that closed its end): both
//! cancel the transport's `ended` token, which also stops long tool calls.

use std::{
    collections::VecDeque,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, BytesMut};
use futures::FutureExt;
use rmcp::{
    RoleServer,
    model::{
        CallToolResult, ContentBlock, ErrorData, NumberOrString, ServerJsonRpcMessage, ServerResult,
    },
    service::RxJsonRpcMessage,
    transport::{StdioReader, StdioWriter, Transport, async_rw::AsyncRwTransport},
};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf},
    sync::{Mutex, mpsc},
};
use tokio_util::sync::CancellationToken;

use super::{admission, wire::Wire};

/// Lines longer than this pass through unread: rmcp drops them anyway (its own limit).
const MAX_HELD_LINE: usize = rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;
/// Stands in for a lone surrogate while the rejected line is read for its id and field.
const MARK: char = '\u{FDD0}';

/// The server's stdio transport; answers marked for `wire` are written from their bytes.
/// `ended` is cancelled when stdin ends or stdout breaks.
pub fn stdio(
    wire: Arc<Wire>,
    ended: CancellationToken,
) -> GuardedTransport<StdioReader, StdioWriter> {
    // Non-blocking pipes when the client launched us with pipes: 2-4x cheaper per call.
    let (reader, writer) = rmcp::transport::stdio_pipes();
    GuardedTransport::new(reader, writer, wire).with_ended(ended)
}

/// Bytes rmcp's reader may write (its own error answers) before they are passed on.
const INNER_OUTPUT: usize = 64 * 1024;

/// rmcp's line transport reading through a [`SurrogateGuard`], answering what it rejects.
///
/// Every line goes out whole through one writer, under its lock: our own answers, the answers
/// of rejected lines, and what rmcp's reader writes itself (an "Invalid request" error), which
/// it writes into a pipe of ours that `receive` empties. `receive` never awaits after taking
/// something (rmcp drops it whenever another event is ready, and what it held would be
/// lost): it puts the answers it passes on in a backlog, which the next write empties first,
/// so they go out before the answer to any later message.
pub struct GuardedTransport<R: AsyncRead + Unpin, W> {
    inner: AsyncRwTransport<RoleServer, SurrogateGuard<R>, DuplexStream>,
    inner_output: DuplexStream,
    /// What rmcp's reader wrote, up to the end of its last whole line.
    inner_pending: BytesMut,
    /// The guard's answers, serialised.
    rejected: mpsc::UnboundedReceiver<Vec<u8>>,
    output: Arc<Output<W>>,
    wire: Arc<Wire>,
}

/// Where lines go out.
struct Output<W> {
    writer: Mutex<W>,
    /// Lines queued by `receive`, written before anything else.
    backlog: std::sync::Mutex<VecDeque<Vec<u8>>>,
    /// Cancelled when a write fails: nobody reads our answers any more.
    ended: CancellationToken,
}

impl<W: AsyncWrite + Unpin> Output<W> {
    /// Writes the backlog, then `line` if any, and flushes. A failed write ends the session:
    /// a client that closed our stdout would never see another answer.
    async fn write(&self, line: Option<&[u8]>) -> io::Result<()> {
        let written = self.write_lines(line).await;
        if let Err(error) = &written {
            if !self.ended.is_cancelled() {
                tracing::info!(%error, "stdout is closed; ending the session");
            }
            self.ended.cancel();
        }
        written
    }

    async fn write_lines(&self, line: Option<&[u8]>) -> io::Result<()> {
        let mut writer = self.writer.lock().await;
        while let Some(queued) = self.next_queued() {
            writer.write_all(&queued).await?;
        }
        if let Some(line) = line {
            writer.write_all(line).await?;
        }
        writer.flush().await
    }

    fn next_queued(&self) -> Option<Vec<u8>> {
        self.backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop_front()
    }
}

impl<R, W> GuardedTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub fn new(reader: R, writer: W, wire: Arc<Wire>) -> Self {
        let (answers, rejected) = mpsc::unbounded_channel();
        let (inner_writer, inner_output) = tokio::io::duplex(INNER_OUTPUT);
        Self {
            inner: AsyncRwTransport::new(SurrogateGuard::new(reader, answers), inner_writer),
            inner_output,
            inner_pending: BytesMut::new(),
            rejected,
            output: Arc::new(Output {
                writer: Mutex::new(writer),
                backlog: std::sync::Mutex::default(),
                ended: CancellationToken::new(),
            }),
            wire,
        }
    }

    /// Cancels `ended` when the session ends (stdin ends or stdout breaks), instead of a
    /// token of the transport's own.
    pub fn with_ended(mut self, ended: CancellationToken) -> Self {
        Arc::get_mut(&mut self.output)
            .expect("the output is not shared before the transport runs")
            .ended = ended;
        self
    }

    /// The line `item` goes out as.
    fn line_for(&self, mut item: ServerJsonRpcMessage) -> io::Result<Vec<u8>> {
        if let Some(line) = self.wire.line_for(&mut item) {
            return line;
        }
        let mut line = serde_json::to_vec(&item)?;
        line.push(b'\n');
        Ok(line)
    }

    /// Puts `line` in the backlog and has it written soon, without waiting for the writer.
    fn queue(&self, line: Vec<u8>) {
        self.output
            .backlog
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(line);
        let output = self.output.clone();
        tokio::spawn(async move {
            if let Err(error) = output.write(None).await {
                tracing::debug!(%error, "cannot write an answer to a rejected line");
            }
        });
    }

    /// Queues the guard's answer to a line it took out.
    fn forward_rejected(&self, answer: Vec<u8>) {
        self.queue(answer);
    }

    /// Queues what rmcp's reader has written so far, without waiting for more.
    fn forward_ready_inner_output(&mut self) {
        while let Some(read) = self
            .inner_output
            .read_buf(&mut self.inner_pending)
            .now_or_never()
        {
            if !matches!(read, Ok(1..)) {
                break;
            }
        }
        self.forward_inner_output();
    }

    /// Queues the whole lines rmcp's reader wrote.
    fn forward_inner_output(&mut self) {
        if let Some(end) = self.inner_pending.iter().rposition(|byte| *byte == b'\n') {
            let lines = self.inner_pending.split_to(end + 1);
            for line in lines.split_inclusive(|byte| *byte == b'\n') {
                self.queue(with_null_id(line));
            }
        }
    }
}

impl<R, W> Transport<RoleServer> for GuardedTransport<R, W>
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        // Serialised now, in the order rmcp sends.
        let line = self.line_for(item);
        let output = self.output.clone();
        async move { output.write(Some(&line?)).await }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // Every branch is cancel safe: rmcp's receive keeps a partly read line when it is
            // dropped, a read from the duplex takes nothing unless it completes, and what a
            // branch takes is queued before the next await.
            tokio::select! {
                biased;
                () = self.output.ended.cancelled() => return None,
                Some(answer) = self.rejected.recv() => self.forward_rejected(answer),
                read = self.inner_output.read_buf(&mut self.inner_pending) => {
                    if !matches!(read, Ok(1..)) {
                        return None;
                    }
                    self.forward_inner_output();
                }
                message = self.inner.receive() => {
                    // rmcp answers a line it rejects while reading the next, and the guard
                    // answers its own as it reads: those answers are queued before this
                    // message is handed on, so they go out before its answer.
                    self.forward_ready_inner_output();
                    while let Ok(answer) = self.rejected.try_recv() {
                        self.forward_rejected(answer);
                    }
                    if message.is_none() {
                        self.output.ended.cancel();
                    }
                    return message;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await?;
        self.output.write(None).await?;
        self.output.writer.lock().await.shutdown().await
    }
}

/// An `AsyncRead` that holds each line until its end and drops (and answers through the
/// channel) a line that escapes a lone surrogate.
pub struct SurrogateGuard<R> {
    inner: R,
    /// The current line, until its newline arrives.
    line: BytesMut,
    /// Bytes released to the reader.
    ready: BytesMut,
    /// The current line outgrew `MAX_HELD_LINE`: its bytes pass through until its newline.
    streaming: bool,
    answers: mpsc::UnboundedSender<Vec<u8>>,
    scratch: Box<[u8]>,
}

impl<R> SurrogateGuard<R> {
    fn new(inner: R, answers: mpsc::UnboundedSender<Vec<u8>>) -> Self {
        Self {
            inner,
            line: BytesMut::new(),
            ready: BytesMut::new(),
            streaming: false,
            answers,
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }

    /// Sorts freshly read bytes into whole lines (checked) and the held remainder.
    fn take(&mut self, mut data: &[u8]) {
        while let Some(newline) = data.iter().position(|byte| *byte == b'\n') {
            let (head, rest) = data.split_at(newline + 1);
            if self.streaming {
                self.ready.extend_from_slice(head);
                self.streaming = false;
            } else {
                self.line.extend_from_slice(head);
                let line = self.line.split();
                self.check(&line);
            }
            data = rest;
        }
        if self.streaming {
            self.ready.extend_from_slice(data);
        } else {
            self.line.extend_from_slice(data);
            if self.line.len() > MAX_HELD_LINE {
                let held = self.line.split();
                self.ready.extend_from_slice(&held);
                self.streaming = true;
            }
        }
    }

    fn check(&mut self, line: &[u8]) {
        match answer_for_line(line) {
            Some(answer) => {
                let _ = self.answers.send(answer_line(&answer));
            }
            None => self.ready.extend_from_slice(line),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SurrogateGuard<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let count = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..count]);
                this.ready.advance(count);
                return Poll::Ready(Ok(()));
            }
            let mut scratch = ReadBuf::new(&mut this.scratch);
            let read = match Pin::new(&mut this.inner).poll_read(cx, &mut scratch) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(())) => scratch.filled().len(),
            };
            if read == 0 {
                // End of input: an unfinished last line goes on as it is.
                let rest = this.line.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.ready.extend_from_slice(&rest);
                continue;
            }
            // Lent out so that `take` may borrow the rest of the guard; no copy.
            let scratch = std::mem::take(&mut this.scratch);
            this.take(&scratch[..read]);
            this.scratch = scratch;
        }
    }
}

pub(super) fn answers(line: &[u8]) -> bool {
    answer_for_line(line).is_some()
}

/// The guard's answer to `line`, or None when rmcp reads it. The element count comes first:
/// it is the one check that builds nothing.
fn answer_for_line(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    admission::answer_for_oversized(line)
        .or_else(|| answer_for_lone_surrogate(line))
        .or_else(|| admission::answer_for_malformed(line))
}

/// `answer` as a line. An error that answers no request carries `"id": null`, as JSON-RPC
/// 2.0 asks (rmcp leaves the id out).
fn answer_line(answer: &ServerJsonRpcMessage) -> Vec<u8> {
    let mut line = match answer {
        ServerJsonRpcMessage::Error(error) if error.id.is_none() => {
            let mut value = serde_json::to_value(answer).expect("an answer always serialises");
            value["id"] = Value::Null;
            serde_json::to_vec(&value)
        }
        _ => serde_json::to_vec(answer),
    }
    .expect("an answer always serialises");
    line.push(b'\n');
    line
}

/// One of rmcp's own answers, with `"id": null` when it has no id.
fn with_null_id(line: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<ServerJsonRpcMessage>(line) {
        Ok(answer) => answer_line(&answer),
        Err(_) => line.to_vec(),
    }
}

/// The answer to a line whose JSON escapes a lone surrogate; None for every other line
/// (including lines that are not JSON at all: rmcp decides about those).
fn answer_for_lone_surrogate(line: &[u8]) -> Option<ServerJsonRpcMessage> {
    let repaired = mark_lone_surrogates(line)?;
    let message: Value = serde_json::from_slice(&repaired).ok()?;
    let id = match message.get("id")? {
        Value::Number(number) => NumberOrString::Number(number.as_i64()?),
        Value::String(text) => NumberOrString::String(Arc::from(text.replace(MARK, "\u{FFFD}"))),
        // A notification or an id no answer can carry: nothing to answer.
        _ => return None,
    };
    let field = marked_field(&message, "").unwrap_or_else(|| "the request".into());
    let problem = format!(
        "{field} holds a lone UTF-16 surrogate escape (such as \\ud800), which is not valid \
         Unicode and cannot be stored; send text as valid UTF-8 (replace the broken \
         character, for example with U+FFFD)"
    );
    tracing::info!(%field, "answered a request holding a lone surrogate");
    if message.get("method").and_then(Value::as_str) == Some("tools/call") {
        let result = CallToolResult::error(vec![ContentBlock::text(problem)]);
        return Some(ServerJsonRpcMessage::response(
            ServerResult::CallToolResult(result),
            id,
        ));
    }
    Some(ServerJsonRpcMessage::error(
        ErrorData::invalid_params(problem, None),
        Some(id),
    ))
}

/// The line with each lone surrogate escape replaced by an escape of [`MARK`], or None when it
/// has none. Backslashes only occur inside JSON strings, so a scan from the start sees every
/// escape; paired surrogates stay as they are.
fn mark_lone_surrogates(line: &[u8]) -> Option<Vec<u8>> {
    let mut escapes = Vec::new();
    let mut at = 0;
    while at < line.len() {
        if line[at] != b'\\' {
            at += 1;
            continue;
        }
        if line.get(at + 1) == Some(&b'u')
            && let Some(unit) = line
                .get(at + 2..at + 6)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
        {
            escapes.push((at, unit));
            at += 6;
        } else {
            at += 2;
        }
    }
    let mut lone = Vec::new();
    let mut index = 0;
    while index < escapes.len() {
        let (position, unit) = escapes[index];
        let next = escapes.get(index + 1);
        let paired = (0xD800..=0xDBFF).contains(&unit)
            && next.is_some_and(|&(next_position, next_unit)| {
                next_position == position + 6 && (0xDC00..=0xDFFF).contains(&next_unit)
            });
        if paired {
            index += 2;
            continue;
        }
        if (0xD800..=0xDFFF).contains(&unit) {
            lone.push(position);
        }
        index += 1;
    }
    if lone.is_empty() {
        return None;
    }
    let mut repaired = line.to_vec();
    for position in lone {
        repaired[position + 2..position + 6].copy_from_slice(b"fdd0");
    }
    Some(repaired)
}

/// The JSON path (`params.arguments.messages[0].content`) of the first string holding [`MARK`].
fn marked_field(value: &Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        Value::String(text) => text.contains(MARK).then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| marked_field(item, &format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains(MARK) {
                return Some(join(&key.replace(MARK, "\u{FFFD}")));
            }
            marked_field(item, &join(key))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn answer(line: &str) -> Option<Value> {
        answer_for_lone_surrogate(line.as_bytes())
            .map(|message| serde_json::to_value(message).unwrap())
    }

    #[test]
    fn paired_surrogates_and_plain_lines_pass() {
        assert!(answer(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).is_none());
        assert!(
            answer(
                r#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"t":"\ud83d\ude00 \\ud800"}}"#
            )
            .is_none()
        );
        assert!(answer("not json \\ud800").is_none());
    }

    #[test]
    fn a_tool_call_with_a_lone_surrogate_gets_a_tool_error_naming_the_field() {
        let line = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"save_conversation","arguments":{"messages":[{"role":"user","content":"cut \ud83d here"}]}}}"#;
        let answer = answer(line).unwrap();
        assert_eq!(answer["id"], 7);
        assert_eq!(answer["result"]["isError"], true);
        let text = answer["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("params.arguments.messages[0].content holds a lone UTF-16 surrogate"),
            "{text}"
        );
    }

    #[test]
    fn other_requests_get_invalid_params_and_notifications_nothing() {
        let error = answer(
            r#"{"jsonrpc":"2.0","id":"a","method":"resources/read","params":{"uri":"\udc00"}}"#,
        )
        .unwrap();
        assert_eq!(error["id"], "a");
        assert_eq!(error["error"]["code"], -32602);
        assert!(
            answer(r#"{"jsonrpc":"2.0","method":"notifications/x","params":{"t":"\ud800"}}"#)
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_guard_passes_lines_in_pieces_and_drops_only_the_rejected_one() {
        use tokio::io::AsyncReadExt;
        let input = concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n",
            "{\"id\":2,\"method\":\"tools/call\",\"params\":{\"arguments\":{\"t\":\"\\ud800\"}}}\n",
            "garbage\n",
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}"
        );
        let (answers, mut rejected) = mpsc::unbounded_channel();
        let (mut feed, pipe) = tokio::io::duplex(7);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            feed.write_all(input.as_bytes()).await.unwrap();
        });
        let mut guard = SurrogateGuard::new(pipe, answers);
        let mut out = String::new();
        guard.read_to_string(&mut out).await.unwrap();
        writer.await.unwrap();
        assert_eq!(
            out,
            concat!(
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n",
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}"
            )
        );
        let answer: Value = serde_json::from_slice(&rejected.recv().await.unwrap()).unwrap();
        assert_eq!(answer["id"], 2);
        let garbage: Value = serde_json::from_slice(&rejected.recv().await.unwrap()).unwrap();
        assert_eq!(garbage["error"]["code"], -32700);
        assert_eq!(garbage.get("id"), Some(&Value::Null));
    }

    /// rmcp answers a line it rejects while reading the next; that answer is written before
    /// the next message is handed on, so answers keep the order of the lines they answer.
    #[tokio::test]
    async fn rmcp_answers_go_out_before_the_next_message_is_handled() {
        let input = concat!(
            "{\"jsonrpc\":\"1.0\",\"id\":1.5,\"method\":\"tools/list\"}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n",
        );
        let (mut client, reader) = tokio::io::duplex(4096);
        let (writer, mut output) = tokio::io::duplex(4096);
        client.write_all(input.as_bytes()).await.unwrap();
        let mut transport = GuardedTransport::new(reader, writer, Arc::new(Wire::default()));
        let message = transport.receive().await.expect("the ping");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], 2);
        let mut written = vec![0; 4096];
        // Nothing is read from the client's side after the ping: without the order kept,
        // the answer would wait for the next receive.
        let length =
            tokio::time::timeout(std::time::Duration::from_secs(5), output.read(&mut written))
                .await
                .expect("rmcp's answer was written before the ping was handed on")
                .unwrap();
        let answer: Value = serde_json::from_slice(&written[..length]).unwrap();
        assert_eq!(answer["error"]["code"], -32600, "{answer}");
    }

    /// rmcp drops `receive` whenever another event is ready; one that waited for stdout
    /// after taking a message (a client slow to read, a response being written) lost it,
    /// and the client's call hung. Here stdout takes one byte and is never read.
    #[tokio::test]
    async fn receive_hands_messages_on_without_waiting_for_stdout() {
        let input = concat!(
            "{\"jsonrpc\":\"1.0\",\"id\":1.5,\"method\":\"tools/list\"}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":\"lone\",\"method\":\"ping\",\"params\":{\"x\":\"\\ud800\"}}\n",
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n",
        );
        let (mut client, reader) = tokio::io::duplex(4096);
        let (writer, mut output) = tokio::io::duplex(1);
        client.write_all(input.as_bytes()).await.unwrap();
        let mut transport = GuardedTransport::new(reader, writer, Arc::new(Wire::default()));
        let message = tokio::time::timeout(Duration::from_secs(5), transport.receive())
            .await
            .expect("the ping, without waiting for stdout")
            .expect("the ping");
        assert_eq!(serde_json::to_value(&message).unwrap()["id"], 2);
        let sent = transport.send(ServerJsonRpcMessage::response(
            ServerResult::empty(()),
            NumberOrString::Number(2),
        ));
        let mut written = Vec::new();
        let reading = async {
            let mut byte = [0; 1];
            while output.read(&mut byte).await.unwrap() == 1 {
                written.push(byte[0]);
                if written.iter().filter(|byte| **byte == b'\n').count() == 3 {
                    break;
                }
            }
        };
        let (sent, ()) = tokio::join!(sent, reading);
        sent.unwrap();
        let answers: Vec<Value> = written
            .split(|byte| *byte == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        let ids: Vec<&Value> = answers.iter().map(|answer| &answer["id"]).collect();
        assert_eq!(
            ids,
            [&Value::Null, &json!("lone"), &json!(2)],
            "{answers:?}"
        );
    }
}
