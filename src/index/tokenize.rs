//! Tokenizers for the full-text index.
//!
//! - `code`: words and identifiers, lowercased. An identifier made of several parts
//!   (`_parse_optional`, `SequenceMatcher`, `HTTPServer2`) gives the whole identifier and each
//!   part at consecutive positions, so `parse_optional` finds `_parse_optional` and the
//!   words `sequence matcher` find `SequenceMatcher`.
//! - `trigram`: every three-character window of the lowercased text at its own position, so
//!   a substring is a phrase of trigrams at fixed offsets: exact, with no false hits.
//!   (tantivy's `NgramTokenizer` puts every gram at position 0, so phrases cannot check order.)

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

pub const CODE_TOKENIZER: &str = "cs_code";
pub const TRIGRAM_TOKENIZER: &str = "cs_trigram";
/// Words longer than this are not indexed as words (minified blobs, hashes); trigrams still
/// cover them.
const MAX_WORD_CHARS: usize = 64;

/// Tokens collected up front, handed out one by one.
pub struct CollectedTokens {
    tokens: Vec<Token>,
    next: usize,
}

impl TokenStream for CollectedTokens {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }

    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

fn collected(tokens: Vec<Token>) -> CollectedTokens {
    CollectedTokens { tokens, next: 0 }
}

#[derive(Clone, Default)]
pub struct CodeTokenizer;

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CollectedTokens;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CollectedTokens {
        collected(code_tokens(text))
    }
}

/// The tokens of `text` as the code field indexes them.
pub fn code_tokens(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut position = 0;
    for (start, word) in identifier_runs(text) {
        let trimmed = word.trim_matches('_');
        if trimmed.is_empty() || trimmed.chars().count() > MAX_WORD_CHARS {
            continue;
        }
        let offset = start + (word.len() - word.trim_start_matches('_').len());
        let parts = split_identifier(trimmed);
        let token = |text: String, from: usize, to: usize, position: usize| Token {
            offset_from: from,
            offset_to: to,
            position,
            text,
            position_length: 1,
        };
        if parts.len() > 1 {
            tokens.push(token(
                trimmed.to_lowercase(),
                offset,
                offset + trimmed.len(),
                position,
            ));
        }
        for (index, (part_start, part)) in parts.iter().enumerate() {
            let from = offset + part_start;
            tokens.push(token(
                part.to_lowercase(),
                from,
                from + part.len(),
                position + index,
            ));
        }
        position += parts.len();
    }
    tokens
}

/// Maximal runs of letters, digits and underscores, with their byte offsets.
fn identifier_runs(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, character) in text.char_indices() {
        let inside = character.is_alphanumeric() || character == '_';
        match (inside, start) {
            (true, None) => start = Some(index),
            (false, Some(from)) => {
                runs.push((from, &text[from..index]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(from) = start {
        runs.push((from, &text[from..]));
    }
    runs.into_iter()
}

/// Splits an identifier at underscores and case changes: `parse_optional` → parse, optional;
/// `SequenceMatcher` → Sequence, Matcher; `HTTPServer2` → HTTP, Server2. Byte offsets kept.
fn split_identifier(identifier: &str) -> Vec<(usize, &str)> {
    let mut parts = Vec::new();
    for (segment_start, segment) in split_keep_offsets(identifier, '_') {
        let characters: Vec<(usize, char)> = segment.char_indices().collect();
        let mut from = 0;
        for window in 1..characters.len() {
            let (previous, current) = (characters[window - 1].1, characters[window].1);
            let next_is_lower = characters
                .get(window + 1)
                .is_some_and(|(_, c)| c.is_lowercase());
            let lower_to_upper = previous.is_lowercase() && current.is_uppercase();
            let acronym_end = previous.is_uppercase() && current.is_uppercase() && next_is_lower;
            if lower_to_upper || acronym_end {
                let at = characters[window].0;
                parts.push((segment_start + from, &segment[from..at]));
                from = at;
            }
        }
        parts.push((segment_start + from, &segment[from..]));
    }
    parts
}

fn split_keep_offsets(text: &str, separator: char) -> Vec<(usize, &str)> {
    let mut pieces = Vec::new();
    let mut from = 0;
    for (index, character) in text.char_indices() {
        if character == separator {
            if index > from {
                pieces.push((from, &text[from..index]));
            }
            from = index + character.len_utf8();
        }
    }
    if from < text.len() {
        pieces.push((from, &text[from..]));
    }
    pieces
}

#[derive(Clone, Default)]
pub struct TrigramTokenizer;

impl Tokenizer for TrigramTokenizer {
    type TokenStream<'a> = TrigramStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> TrigramStream<'a> {
        TrigramStream::new(text)
    }
}

/// Every window of three characters of the lowercased text, at the position of its first
/// character, with each run of white space counted as one space (indentation would otherwise
/// be a third of the grams of source code); queries are cut the same way.
///
/// Streams one reused token: the index sees tens of millions of grams, and a fresh `String`
/// for each was most of the cost of indexing.
pub struct TrigramStream<'a> {
    characters: std::str::CharIndices<'a>,
    /// The last three characters kept: (byte offset, lowercased character).
    window: [(usize, char); 3],
    filled: usize,
    previous_was_space: bool,
    token: Token,
}

impl<'a> TrigramStream<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            characters: text.char_indices(),
            window: [(0, ' '); 3],
            filled: 0,
            previous_was_space: false,
            token: Token::default(),
        }
    }

    /// The next character after white space is collapsed, lowercased.
    fn next_character(&mut self) -> Option<(usize, char)> {
        for (offset, character) in self.characters.by_ref() {
            if character.is_whitespace() {
                if self.previous_was_space {
                    continue;
                }
                self.previous_was_space = true;
                return Some((offset, ' '));
            }
            self.previous_was_space = false;
            let lowered = if character.is_ascii() {
                character.to_ascii_lowercase()
            } else {
                character.to_lowercase().next().unwrap_or(character)
            };
            return Some((offset, lowered));
        }
        None
    }
}

impl TokenStream for TrigramStream<'_> {
    fn advance(&mut self) -> bool {
        loop {
            let Some(next) = self.next_character() else {
                return false;
            };
            self.window = [self.window[1], self.window[2], next];
            self.filled += 1;
            if self.filled >= 3 {
                let [(from, a), (_, b), (last, c)] = self.window;
                self.token.text.clear();
                self.token.text.extend([a, b, c]);
                self.token.offset_from = from;
                self.token.offset_to = last + c.len_utf8();
                self.token.position = self.filled - 3;
                self.token.position_length = 1;
                return true;
            }
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// The trigrams of `text`, as the index cuts them (for building substring queries).
pub fn trigram_tokens(text: &str) -> Vec<Token> {
    let mut stream = TrigramStream::new(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push(stream.token().clone());
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(tokens: &[Token]) -> Vec<(String, usize)> {
        tokens
            .iter()
            .map(|token| (token.text.clone(), token.position))
            .collect()
    }

    fn owned(pairs: &[(&str, usize)]) -> Vec<(String, usize)> {
        pairs
            .iter()
            .map(|(text, position)| (text.to_string(), *position))
            .collect()
    }

    #[test]
    fn identifiers_give_the_whole_and_their_parts() {
        assert_eq!(
            texts(&code_tokens("def _parse_optional(x):")),
            owned(&[
                ("def", 0),
                ("parse_optional", 1),
                ("parse", 1),
                ("optional", 2),
                ("x", 3)
            ])
        );
        assert_eq!(
            texts(&code_tokens("SequenceMatcher HTTPServer2")),
            owned(&[
                ("sequencematcher", 0),
                ("sequence", 0),
                ("matcher", 1),
                ("httpserver2", 2),
                ("http", 2),
                ("server2", 3)
            ])
        );
    }

    #[test]
    fn offsets_point_at_the_source_text() {
        let text = "x = __Deque_Item";
        for token in code_tokens(text) {
            assert_eq!(
                text[token.offset_from..token.offset_to].to_lowercase(),
                token.text
            );
        }
    }

    #[test]
    fn underscores_alone_and_overlong_words_are_not_words() {
        assert!(code_tokens("___ __").is_empty());
        assert!(code_tokens(&"a".repeat(65)).is_empty());
    }

    #[test]
    fn trigrams_are_positional_lowercase_windows() {
        assert_eq!(
            texts(&trigram_tokens("AbcDé")),
            owned(&[("abc", 0), ("bcd", 1), ("cdé", 2)])
        );
        assert!(trigram_tokens("ab").is_empty());
        // A run of white space is one space, so indentation adds one gram, not one per column.
        assert_eq!(
            texts(&trigram_tokens("a\n        b")),
            texts(&trigram_tokens("a b"))
        );
        let text = "héllo";
        for token in trigram_tokens(text) {
            assert_eq!(
                text[token.offset_from..token.offset_to].to_lowercase(),
                token.text
            );
        }
    }
}
