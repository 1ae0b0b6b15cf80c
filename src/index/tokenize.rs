//! Tokenizers for the full-text index.
//!
//! - `code`: words and identifiers, lowercased. An identifier made of several parts
//!   (`_parse_optional`, `SequenceMatcher`, `HTTPServer2`) gives the whole identifier and each
//!   part at consecutive positions, so `parse_optional` finds `_parse_optional` and the
//!   words `sequence matcher` find `SequenceMatcher`.
//! - trigrams: the three-character windows of the lowercased text, white space folded
//!   ([`for_each_gram`], [`fold`]). They feed each group's gram filter (`gram_filter.rs`);
//!   a substring query checks its candidates' text with a [`Needle`], so hits are exact.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

pub const CODE_TOKENIZER: &str = "cs_code";
/// Words longer than this are not indexed as words (minified blobs, hashes); trigrams still
/// cover them.
const MAX_WORD_CHARS: usize = 64;

#[derive(Clone, Default)]
pub struct CodeTokenizer {
    /// The current identifier's tokens as (byte range, position), reused across documents.
    pending: Vec<(usize, usize, usize)>,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeStream<'a> {
        self.pending.clear();
        CodeStream {
            text,
            cursor: 0,
            position: 0,
            pending: &mut self.pending,
            next: 0,
            token: Token::default(),
        }
    }
}

/// The tokens of `text` as the code field indexes them.
pub fn code_tokens(text: &str) -> Vec<Token> {
    let mut tokenizer = CodeTokenizer::default();
    let mut stream = tokenizer.token_stream(text);
    let mut tokens = Vec::new();
    while stream.advance() {
        tokens.push(stream.token().clone());
    }
    tokens
}

/// Streams the code field's tokens through one reused token: identifiers are found one at a
/// time and their parts queued as byte ranges, so indexing allocates nothing per token.
pub struct CodeStream<'a> {
    text: &'a str,
    /// Where the search for the next identifier resumes.
    cursor: usize,
    /// The position of the next identifier's first part.
    position: usize,
    pending: &'a mut Vec<(usize, usize, usize)>,
    next: usize,
    token: Token,
}

impl CodeStream<'_> {
    /// Queues the tokens of the next indexable identifier; false at the end of the text.
    fn queue_next_identifier(&mut self) -> bool {
        self.pending.clear();
        self.next = 0;
        while self.pending.is_empty() {
            let Some((start, end)) = next_run(self.text, self.cursor) else {
                return false;
            };
            self.cursor = end;
            let word = &self.text[start..end];
            let trimmed = word.trim_matches('_');
            // A word of at most MAX_WORD_CHARS bytes has at most that many characters.
            let too_long =
                trimmed.len() > MAX_WORD_CHARS && trimmed.chars().count() > MAX_WORD_CHARS;
            if trimmed.is_empty() || too_long {
                continue;
            }
            let offset = start + (word.len() - word.trim_start_matches('_').len());
            let first_part = self.pending.len();
            split_identifier(trimmed, |from, to| {
                let part = self.pending.len() - first_part;
                self.pending
                    .push((offset + from, offset + to, self.position + part));
            });
            let parts = self.pending.len() - first_part;
            if parts > 1 {
                // The whole identifier first, at its first part's position.
                self.pending
                    .insert(0, (offset, offset + trimmed.len(), self.position));
            }
            self.position += parts;
        }
        true
    }
}

impl TokenStream for CodeStream<'_> {
    fn advance(&mut self) -> bool {
        if self.next >= self.pending.len() && !self.queue_next_identifier() {
            return false;
        }
        let (from, to, position) = self.pending[self.next];
        self.next += 1;
        self.token.text.clear();
        push_lowercase(&mut self.token.text, &self.text[from..to]);
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = position;
        self.token.position_length = 1;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

fn is_identifier_character(character: char) -> bool {
    character.is_alphanumeric() || character == '_'
}

/// The byte range of the first maximal run of letters, digits and underscores at or after
/// `from`.
fn next_run(text: &str, from: usize) -> Option<(usize, usize)> {
    let mut at = from;
    loop {
        let (character, length) = character_at(text, at)?;
        if is_identifier_character(character) {
            break;
        }
        at += length;
    }
    let start = at;
    while let Some((character, length)) = character_at(text, at) {
        if !is_identifier_character(character) {
            break;
        }
        at += length;
    }
    Some((start, at))
}

/// The character at byte `at` (a character boundary) and its length; ASCII without decoding.
fn character_at(text: &str, at: usize) -> Option<(char, usize)> {
    let byte = *text.as_bytes().get(at)?;
    if byte.is_ascii() {
        return Some((char::from(byte), 1));
    }
    let character = text[at..].chars().next()?;
    Some((character, character.len_utf8()))
}

fn push_lowercase(into: &mut String, text: &str) {
    if text.is_ascii() {
        into.extend(
            text.bytes()
                .map(|byte| char::from(byte.to_ascii_lowercase())),
        );
    } else {
        into.push_str(&text.to_lowercase());
    }
}

/// Splits an identifier at underscores and case changes: `parse_optional` → parse, optional;
/// `SequenceMatcher` → Sequence, Matcher; `HTTPServer2` → HTTP, Server2. Gives each part's
/// byte range to `part`.
fn split_identifier(identifier: &str, mut part: impl FnMut(usize, usize)) {
    let mut segment_start = 0;
    for segment in identifier.split('_') {
        let segment_end = segment_start + segment.len();
        if !segment.is_empty() {
            let mut from = segment_start;
            let mut characters = segment.char_indices().peekable();
            let mut previous: Option<char> = None;
            while let Some((index, current)) = characters.next() {
                if let Some(previous) = previous {
                    let next_is_lower = characters.peek().is_some_and(|(_, c)| c.is_lowercase());
                    let lower_to_upper = previous.is_lowercase() && current.is_uppercase();
                    let acronym_end =
                        previous.is_uppercase() && current.is_uppercase() && next_is_lower;
                    if lower_to_upper || acronym_end {
                        part(from, segment_start + index);
                        from = segment_start + index;
                    }
                }
                previous = Some(current);
            }
            part(from, segment_end);
        }
        segment_start = segment_end + 1;
    }
}

/// Calls `each` with the key of every trigram of `text` as [`fold`] sees it, in order and
/// repeats included. A key packs the gram's three characters, 21 bits each; ASCII texts (most
/// source code) take a byte-by-byte path that gives the same keys.
pub fn for_each_gram(text: &str, mut each: impl FnMut(u64)) {
    if !text.is_ascii() {
        let mut stream = TrigramStream::new(text);
        while let Some(gram) = stream.next_gram() {
            each(gram_key(gram));
        }
        return;
    }
    let (mut window, mut filled, mut previous_was_space) = (0u64, 0, false);
    for &byte in text.as_bytes() {
        let folded = if is_ascii_white_space(byte) {
            if previous_was_space {
                continue;
            }
            previous_was_space = true;
            b' '
        } else {
            previous_was_space = false;
            byte.to_ascii_lowercase()
        };
        window = ((window << 21) | u64::from(folded)) & GRAM_KEY_MASK;
        filled += 1;
        if filled >= 3 {
            each(window);
        }
    }
}

const GRAM_KEY_MASK: u64 = (1 << 63) - 1;

fn gram_key(gram: [char; 3]) -> u64 {
    let [a, b, c] = gram.map(|character| u64::from(u32::from(character)));
    (a << 42) | (b << 21) | c
}

/// `char::is_whitespace` for an ASCII byte (which, unlike `u8::is_ascii_whitespace`, counts
/// the vertical tab).
fn is_ascii_white_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `text` as trigrams see it: lowercased, each run of white space one space. A passage holds
/// a substring exactly when its folded text contains the folded substring.
pub fn fold(text: &str) -> String {
    let mut stream = TrigramStream::new(text);
    let mut folded = String::with_capacity(text.len());
    while let Some(character) = stream.next_character() {
        folded.push(character);
    }
    folded
}

/// A folded needle, found in texts as `fold(text).contains(needle)` would find it.
///
/// Folding maps each character to one lowercase character and each run of white space to one
/// space, so in ASCII text a needle without spaces is found exactly where it is found in the
/// text lowercased byte by byte: a SIMD search over a reused buffer instead of a new folded
/// string per text. Other texts and needles take the folded path.
pub struct Needle {
    folded: String,
    /// The needle's bytes when it is ASCII without spaces.
    ascii: Option<memchr::memmem::Finder<'static>>,
    lowered: Vec<u8>,
}

impl Needle {
    pub fn new(needle: &str) -> Self {
        let folded = fold(needle);
        let ascii = (folded.is_ascii() && !folded.contains(' '))
            .then(|| memchr::memmem::Finder::new(folded.as_bytes()).into_owned());
        Self {
            folded,
            ascii,
            lowered: Vec::new(),
        }
    }

    pub fn found_in(&mut self, text: &str) -> bool {
        self.occurrences_in(text) > 0
    }

    /// How many times `text` holds the needle, not counting overlaps.
    pub fn occurrences_in(&mut self, text: &str) -> usize {
        match &self.ascii {
            Some(finder) if text.is_ascii() => {
                self.lowered.clear();
                self.lowered.extend_from_slice(text.as_bytes());
                self.lowered.make_ascii_lowercase();
                finder.find_iter(&self.lowered).count()
            }
            _ => fold(text).matches(&self.folded).count(),
        }
    }
}

/// The windows of three characters of the lowercased text, each run of white space counted
/// as one space (indentation would otherwise be a third of the grams of source code).
/// Queries are cut the same way.
struct TrigramStream<'a> {
    characters: std::str::Chars<'a>,
    /// The last three characters, lowercased.
    window: [char; 3],
    filled: usize,
    previous_was_space: bool,
}

impl<'a> TrigramStream<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            characters: text.chars(),
            window: [' '; 3],
            filled: 0,
            previous_was_space: false,
        }
    }

    /// The next character after white space is collapsed, lowercased.
    fn next_character(&mut self) -> Option<char> {
        for character in self.characters.by_ref() {
            if character.is_whitespace() {
                if self.previous_was_space {
                    continue;
                }
                self.previous_was_space = true;
                return Some(' ');
            }
            self.previous_was_space = false;
            let lowered = if character.is_ascii() {
                character.to_ascii_lowercase()
            } else {
                character.to_lowercase().next().unwrap_or(character)
            };
            return Some(lowered);
        }
        None
    }

    /// The next window of three characters.
    fn next_gram(&mut self) -> Option<[char; 3]> {
        loop {
            let next = self.next_character()?;
            self.window = [self.window[1], self.window[2], next];
            self.filled += 1;
            if self.filled >= 3 {
                return Some(self.window);
            }
        }
    }
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

    fn grams(text: &str) -> Vec<String> {
        let mut grams = Vec::new();
        for_each_gram(text, |key| {
            let character = |shift: u32| char::from_u32((key >> shift) as u32 & 0x1f_ffff);
            grams.push([42, 21, 0].into_iter().filter_map(character).collect());
        });
        grams
    }

    #[test]
    fn trigrams_are_lowercase_windows_of_folded_text() {
        assert_eq!(grams("AbcAb"), ["abc", "bca", "cab"]);
        assert_eq!(grams("AbcDé"), ["abc", "bcd", "cdé"]);
        // A run of white space is one space, so indentation adds one gram, not one per column.
        assert_eq!(grams("a\n        b"), ["a b"]);
        assert_eq!(fold("  Tab\t\tAND  Space"), " tab and space");
        assert!(grams("ab").is_empty());
    }

    /// ASCII texts take a byte-by-byte path; it gives what folding character by character
    /// gives, in the same order.
    #[test]
    fn ascii_grams_are_the_folded_grams() {
        let reference = |text: &str| {
            let mut stream = TrigramStream::new(text);
            let mut keys = Vec::new();
            while let Some(gram) = stream.next_gram() {
                keys.push(gram_key(gram));
            }
            keys
        };
        for text in [
            "def _siftdown_max(heap, startpos, pos):",
            "  Mixed\tCASE\r\n\x0b\x0cwhite   space\n\n",
            "ab",
            "",
            "aaaaaaa AAAA",
            "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./\x7f\x01",
        ] {
            assert!(text.is_ascii());
            let mut keys = Vec::new();
            for_each_gram(text, |key| keys.push(key));
            assert_eq!(keys, reference(text), "{text:?}");
        }
    }

    #[test]
    fn a_needle_is_found_as_folding_finds_it() {
        let mut needle = Needle::new("Siftdown_MA");
        assert!(needle.found_in("def _siftdown_max(heap):"));
        assert!(!needle.found_in("def _siftdown _max(heap):"));
        // White space in the needle or the text folds to one space.
        assert!(Needle::new("a  b").found_in("A\n\tb"));
        // Non-ASCII text takes the folded path: the Kelvin sign lowercases to an ASCII k.
        assert!(Needle::new("kelvin").found_in("\u{212A}ELVIN"));
        assert!(Needle::new("straße").found_in("STRAßE"));
    }

    #[test]
    fn occurrences_do_not_overlap_and_fold_alike() {
        assert_eq!(Needle::new("aba").occurrences_in("ABABABA aba"), 3);
        assert_eq!(Needle::new("a b").occurrences_in("a  b\ta\nb"), 2);
        assert_eq!(
            Needle::new("elvin").occurrences_in("\u{212A}ELVIN kelvin"),
            2
        );
        assert_eq!(Needle::new("xyz").occurrences_in("abc"), 0);
    }
}
