//! Repeated `get_context` answers written from the bytes of their first one.
//!
//! A 4,000-token bundle is about 23 KB of JSON; building and serialising it was most of what a
//! cached call cost. An answer that L1 served is the same, byte for byte, every time L1
//! serves that assembly again (`AssembledContext::assembly`: equal ids, equal content; a new
//! assembly gets a new id). So the first L1 answer of an assembly is recorded as it goes out,
//! and later ones are written from that record.
//!
//! The tool and the transport meet here, through a mark in the result's `_meta` that never
//! reaches the client:
//! - the tool returns the full result marked `record`, or, when this assembly's bytes are
//!   recorded, an empty result marked `replay` after pinning those bytes;
//! - the transport, sending a marked response, takes the mark out and records the serialised
//!   result, or writes the pinned bytes in place of the empty one.
//!
//! Pinned bytes leave only when sent, so a replay mark always finds them, whatever the record
//! evicts meanwhile. A cancelled call's pin stays; at most `MAX_PINNED` assemblies are pinned,
//! beyond which calls take the full path.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use rmcp::model::{CallToolResult, JsonRpcMessage, MetaObject, ServerJsonRpcMessage, ServerResult};
use rustc_hash::FxBuildHasher;
use serde_json::{Value, json};

/// The `_meta` key of the mark.
const MARK: &str = "context-store/wire";
/// Bytes of recorded answers kept (about 1,400 bundles of 4,000 tokens).
const MAX_RECORDED_BYTES: u64 = 32 << 20;
/// Assemblies whose bytes may wait to be sent at once.
const MAX_PINNED: usize = 64;

/// The answers of one server, shared by its tool handler and its transport.
pub struct Wire {
    recorded: moka::sync::Cache<u64, Bytes, FxBuildHasher>,
    /// Bytes a replay mark points at, with how many sends still need them.
    pinned: Mutex<HashMap<u64, (Bytes, usize)>>,
}

impl Default for Wire {
    fn default() -> Self {
        Self {
            recorded: moka::sync::Cache::builder()
                .max_capacity(MAX_RECORDED_BYTES)
                .weigher(|_: &u64, bytes: &Bytes| u32::try_from(bytes.len()).unwrap_or(u32::MAX))
                .build_with_hasher(FxBuildHasher),
            pinned: Mutex::new(HashMap::new()),
        }
    }
}

impl Wire {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An empty result marked to be sent as the recorded answer of `assembly`, when there is
    /// one (its bytes stay pinned until sent).
    pub fn replay(&self, assembly: u64) -> Option<CallToolResult> {
        let bytes = self.recorded.get(&assembly)?;
        let mut pinned = self
            .pinned
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if pinned.len() >= MAX_PINNED && !pinned.contains_key(&assembly) {
            return None;
        }
        pinned.entry(assembly).or_insert((bytes, 0)).1 += 1;
        Some(marked(CallToolResult::success(Vec::new()), assembly, true))
    }

    /// `result`, marked to be recorded as the answer of `assembly` when it is sent.
    pub fn record(&self, result: CallToolResult, assembly: u64) -> CallToolResult {
        marked(result, assembly, false)
    }

    /// The line to write for `message` when it is a marked answer; None for any other.
    pub fn line_for(&self, message: &mut ServerJsonRpcMessage) -> Option<io::Result<Vec<u8>>> {
        let JsonRpcMessage::Response(response) = message else {
            return None;
        };
        let ServerResult::CallToolResult(result) = &mut response.result else {
            return None;
        };
        let (assembly, replay) = take_mark(result)?;
        let bytes = if replay {
            match self.unpin(assembly) {
                Some(bytes) => bytes,
                None => {
                    return Some(Err(io::Error::other(
                        "a replayed answer lost its bytes before it was sent",
                    )));
                }
            }
        } else {
            match serde_json::to_vec(&response.result) {
                Ok(bytes) => {
                    let bytes = Bytes::from(bytes);
                    self.recorded.insert(assembly, bytes.clone());
                    bytes
                }
                Err(error) => return Some(Err(error.into())),
            }
        };
        Some(response_line(&response.id, &bytes))
    }

    fn unpin(&self, assembly: u64) -> Option<Bytes> {
        let mut pinned = self
            .pinned
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let (bytes, waiting) = pinned.get_mut(&assembly)?;
        let bytes = bytes.clone();
        *waiting -= 1;
        if *waiting == 0 {
            pinned.remove(&assembly);
        }
        Some(bytes)
    }
}

fn marked(mut result: CallToolResult, assembly: u64, replay: bool) -> CallToolResult {
    let meta = result.meta.get_or_insert_with(MetaObject::new);
    meta.0
        .insert(MARK.into(), json!({"assembly": assembly, "replay": replay}));
    result
}

/// The mark's assembly and whether it is a replay, taken out of `result`.
fn take_mark(result: &mut CallToolResult) -> Option<(u64, bool)> {
    let meta = result.meta.as_mut()?;
    let mark = meta.0.remove(MARK)?;
    if meta.0.is_empty() {
        result.meta = None;
    }
    let assembly = mark.get("assembly").and_then(Value::as_u64)?;
    let replay = mark.get("replay").and_then(Value::as_bool)?;
    Some((assembly, replay))
}

/// A JSON-RPC response line around an already serialised result.
fn response_line(id: &rmcp::model::RequestId, result: &[u8]) -> io::Result<Vec<u8>> {
    let mut line = Vec::with_capacity(result.len() + 64);
    line.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    serde_json::to_writer(&mut line, id)?;
    line.extend_from_slice(br#","result":"#);
    line.extend_from_slice(result);
    line.extend_from_slice(b"}\n");
    Ok(line)
}

#[cfg(test)]
mod tests {
    use rmcp::model::{ContentBlock, JsonRpcResponse, JsonRpcVersion2_0, NumberOrString};

    use super::*;

    fn response(id: i64, result: CallToolResult) -> ServerJsonRpcMessage {
        JsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id: NumberOrString::Number(id),
            result: ServerResult::CallToolResult(result),
        })
    }

    fn plain_line(message: &ServerJsonRpcMessage) -> Vec<u8> {
        let mut line = serde_json::to_vec(message).unwrap();
        line.push(b'\n');
        line
    }

    fn full_result() -> CallToolResult {
        let mut result = CallToolResult::success(vec![ContentBlock::text("a bundle")]);
        result.structured_content = Some(json!({"cache": "l1", "total_tokens": 2}));
        result
    }

    #[test]
    fn a_replay_writes_what_the_recorded_answer_wrote() {
        let wire = Wire::default();
        assert!(wire.replay(7).is_none(), "nothing is recorded yet");
        let mut first = response(1, wire.record(full_result(), 7));
        let recorded = wire.line_for(&mut first).unwrap().unwrap();
        assert_eq!(
            recorded,
            plain_line(&response(1, full_result())),
            "the mark never leaves"
        );

        let mut again = response(2, wire.replay(7).expect("recorded"));
        let replayed = wire.line_for(&mut again).unwrap().unwrap();
        assert_eq!(replayed, plain_line(&response(2, full_result())));
        assert!(
            wire.pinned.lock().unwrap().is_empty(),
            "sent bytes are unpinned"
        );
    }

    #[test]
    fn other_messages_pass_untouched() {
        let wire = Wire::default();
        let mut plain = response(3, full_result());
        assert!(wire.line_for(&mut plain).is_none());
        assert!(wire.replay(3).is_none());
    }

    #[test]
    fn pinned_bytes_survive_eviction_and_the_pin_limit_holds() {
        let wire = Wire::default();
        for assembly in 0..=MAX_PINNED as u64 {
            let mut first = response(1, wire.record(full_result(), assembly));
            wire.line_for(&mut first).unwrap().unwrap();
        }
        let placeholders: Vec<_> = (0..MAX_PINNED as u64)
            .map(|assembly| wire.replay(assembly).expect("recorded"))
            .collect();
        assert!(
            wire.replay(MAX_PINNED as u64).is_none(),
            "over the pin limit: full path"
        );
        wire.recorded.invalidate_all();
        for (id, placeholder) in placeholders.into_iter().enumerate() {
            let mut message = response(id as i64, placeholder);
            let line = wire.line_for(&mut message).unwrap().unwrap();
            assert_eq!(line, plain_line(&response(id as i64, full_result())));
        }
    }
}
