//! Cutting a document into passages along lines, each small enough for the embedding model
//! and each knowing its line range, so that a hit points at lines.

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    /// First line, counted from 1.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
}

/// A cheap stand-in for a WordPiece count when no tokenizer is at hand: about one token per
/// three bytes of code or prose, rounded up. It overestimates English words, which errs on
/// the side of smaller passages.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(3)
}

/// Splits `text` into passages of whole lines whose token count (by `count`) stays within
/// `max_tokens`; a single line longer than that is cut at character boundaries into pieces
/// that keep that line's number. Blank passages are dropped.
pub fn chunk_lines(text: &str, max_tokens: usize, count: impl Fn(&str) -> usize) -> Vec<Chunk> {
    let max_tokens = max_tokens.max(1);
    let mut chunks = Vec::new();
    let mut current = Pending::default();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index as u32 + 1;
        let tokens = count(line);
        if tokens > max_tokens {
            current.flush_into(&mut chunks);
            split_long_line(line, number, max_tokens, &count, &mut chunks);
            continue;
        }
        if current.tokens + tokens > max_tokens {
            current.flush_into(&mut chunks);
        }
        current.push(line, number, tokens);
    }
    current.flush_into(&mut chunks);
    chunks
}

#[derive(Default)]
struct Pending {
    text: String,
    start_line: u32,
    end_line: u32,
    tokens: usize,
}

impl Pending {
    fn push(&mut self, line: &str, number: u32, tokens: usize) {
        if self.text.is_empty() {
            self.start_line = number;
        }
        self.text.push_str(line);
        self.end_line = number;
        self.tokens += tokens;
    }

    fn flush_into(&mut self, chunks: &mut Vec<Chunk>) {
        let pending = std::mem::take(self);
        if !pending.text.trim().is_empty() {
            chunks.push(Chunk {
                text: pending.text,
                start_line: pending.start_line,
                end_line: pending.end_line,
            });
        }
    }
}

fn split_long_line(
    line: &str,
    number: u32,
    max_tokens: usize,
    count: &impl Fn(&str) -> usize,
    chunks: &mut Vec<Chunk>,
) {
    let mut piece = String::new();
    for character in line.chars() {
        piece.push(character);
        if count(&piece) > max_tokens {
            piece.pop();
            push_piece(std::mem::take(&mut piece), number, chunks);
            piece.push(character);
        }
    }
    push_piece(piece, number, chunks);
}

fn push_piece(text: String, number: u32, chunks: &mut Vec<Chunk>) {
    if !text.trim().is_empty() {
        chunks.push(Chunk {
            text,
            start_line: number,
            end_line: number,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, for readable tests.
    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    #[test]
    fn groups_whole_lines_up_to_the_budget() {
        let text = "a b\nc d\ne f\ng\n";
        let chunks = chunk_lines(text, 4, words);
        assert_eq!(
            chunks,
            vec![
                Chunk {
                    text: "a b\nc d\n".into(),
                    start_line: 1,
                    end_line: 2
                },
                Chunk {
                    text: "e f\ng\n".into(),
                    start_line: 3,
                    end_line: 4
                },
            ]
        );
    }

    #[test]
    fn a_long_line_is_cut_into_pieces_that_keep_its_number() {
        let text = "short\none two three four five six seven\nend";
        let chunks = chunk_lines(text, 3, words);
        let lines: Vec<(u32, u32)> = chunks
            .iter()
            .map(|chunk| (chunk.start_line, chunk.end_line))
            .collect();
        assert_eq!(lines, [(1, 1), (2, 2), (2, 2), (2, 2), (3, 3)]);
        assert!(chunks.iter().all(|chunk| words(&chunk.text) <= 3));
        let rejoined: String = chunks[1..4]
            .iter()
            .map(|chunk| chunk.text.as_str())
            .collect();
        assert_eq!(rejoined, "one two three four five six seven\n");
    }

    #[test]
    fn blank_stretches_and_empty_documents_give_no_passages() {
        assert!(chunk_lines("", 10, words).is_empty());
        assert!(chunk_lines("\n\n  \n", 10, words).is_empty());
        let chunks = chunk_lines("x\n\n\n", 10, words);
        assert_eq!((chunks[0].start_line, chunks[0].end_line), (1, 3));
    }

    #[test]
    fn every_line_of_the_document_lands_in_exactly_one_passage() {
        let text: String = (1..=200)
            .map(|n| format!("line {n} {}\n", "w ".repeat(n % 7)))
            .collect();
        let chunks = chunk_lines(&text, 20, words);
        let rejoined: String = chunks.iter().map(|chunk| chunk.text.as_str()).collect();
        assert_eq!(rejoined, text);
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end_line + 1, pair[1].start_line);
        }
    }

    #[test]
    fn the_estimate_rounds_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("abcd"), 2);
    }
}
