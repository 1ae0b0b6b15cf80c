//! Bloom filters of trigrams: one per group of consecutive passages, telling which groups may
//! hold a substring. A filter never says no to a gram it was given, so a substring search
//! that checks every admitted group's text loses no hit; a false yes costs one group's check.
//!
//! Why not trigram postings in tantivy: they were half of indexing's CPU (about 300 ns per
//! distinct gram of each group in its postings writer), where setting a filter's bits costs a
//! few nanoseconds per gram. The filter is stored as 256 fast-field words on the group's first
//! passage; a query reads only the words its grams' bits fall in.
//!
//! The layout is part of the index format: changing a constant or the hash asks for a
//! rebuild (rename the field in `text.rs`).

use super::tokenize::for_each_gram;

/// 64-bit words per filter: 16,384 bits.
pub const FILTER_WORDS: usize = 256;
const FILTER_BITS: u32 = (FILTER_WORDS * 64) as u32;
/// Bits set per gram. With a group's usual 1,100 distinct grams, about 0.2% of groups admit a
/// gram they lack; at the fill limit below, about 1%.
const PROBES: u32 = 5;
/// A group takes no further passage once this many of its bits are set (40%, about 1,670
/// distinct grams), so that dense text does not turn a filter into a yes to everything.
const FILL_LIMIT: u32 = FILTER_BITS * 2 / 5;

/// The grams of a group of passages.
#[derive(Clone)]
pub struct GramFilter {
    words: Box<[u64; FILTER_WORDS]>,
}

impl Default for GramFilter {
    fn default() -> Self {
        Self {
            words: Box::new([0; FILTER_WORDS]),
        }
    }
}

impl GramFilter {
    /// Adds every gram of `text`.
    pub fn add(&mut self, text: &str) {
        for_each_gram(text, |gram| {
            for bit in probes(gram) {
                self.words[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        });
    }

    /// Whether the group should take no further passage.
    pub fn is_full(&self) -> bool {
        let set: u32 = self.words.iter().map(|word| word.count_ones()).sum();
        set >= FILL_LIMIT
    }

    pub fn words(&self) -> &[u64; FILTER_WORDS] {
        &self.words
    }
}

/// What a needle asks of a filter: for each word its grams' bits fall in, the bits that must
/// be set there, so that a group is tested with one read per such word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GramProbe {
    required: Vec<(usize, u64)>,
}

impl GramProbe {
    /// None when the needle has no gram (fewer than three characters once folded).
    pub fn of(needle: &str) -> Option<Self> {
        let mut words = [0u64; FILTER_WORDS];
        for_each_gram(needle, |gram| {
            for bit in probes(gram) {
                words[(bit / 64) as usize] |= 1 << (bit % 64);
            }
        });
        let required: Vec<(usize, u64)> = words
            .into_iter()
            .enumerate()
            .filter(|(_, bits)| *bits != 0)
            .collect();
        (!required.is_empty()).then_some(Self { required })
    }

    /// (word, bits) pairs; a group may hold the needle only if each word has all its bits.
    pub fn required(&self) -> &[(usize, u64)] {
        &self.required
    }

    /// Whether `filter` may hold the needle.
    pub fn admits(&self, filter: &GramFilter) -> bool {
        self.required
            .iter()
            .all(|&(word, bits)| filter.words[word] & bits == bits)
    }
}

/// The bits of a gram: double hashing of one 64-bit mix (Kirsch and Mitzenmacher).
fn probes(gram: u64) -> impl Iterator<Item = u32> {
    let hash = mix(gram);
    let (first, step) = (hash as u32, (hash >> 32) as u32 | 1);
    (0..PROBES).map(move |at| first.wrapping_add(at.wrapping_mul(step)) % FILTER_BITS)
}

/// SplitMix64's finaliser: every bit of a gram's key moves about half of the hash's bits.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(text: &str) -> GramFilter {
        let mut filter = GramFilter::default();
        filter.add(text);
        filter
    }

    #[test]
    fn a_filter_admits_every_substring_of_its_text() {
        let text = "  def _SiftDown_Max(heap,\n\t\tstartpos, pos):  # Straße \u{212A}elvin";
        let filter = filter_of(text);
        let characters: Vec<(usize, char)> = text.char_indices().collect();
        for from in 0..characters.len() {
            for to in from + 3..=characters.len() {
                let end = characters.get(to).map_or(text.len(), |(at, _)| *at);
                let window = &text[characters[from].0..end];
                if let Some(probe) = GramProbe::of(window) {
                    assert!(probe.admits(&filter), "{window:?}");
                }
            }
        }
        // Case and runs of white space fold as the exact check folds them.
        let probe = GramProbe::of("SIFTDOWN_max(HEAP, startpos").expect("grams");
        assert!(probe.admits(&filter));
    }

    #[test]
    fn needles_shorter_than_a_gram_ask_nothing() {
        assert_eq!(GramProbe::of("ab"), None);
        assert_eq!(GramProbe::of("   "), None);
        assert!(GramProbe::of("a b").is_some());
    }

    /// Random needles of three letters against filters of real-sized groups: a filter admits
    /// about as many grams it lacks as its fill predicts.
    #[test]
    fn false_admissions_are_rare() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state = mix(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            state
        };
        let letters = |value: u64| -> String {
            (0..3)
                .map(|at| char::from(b'a' + ((value >> (8 * at)) % 26) as u8))
                .collect()
        };
        // About 1,100 distinct grams (seven per word), as eight passages of source code hold.
        let words: Vec<String> = (0..160)
            .map(|_| letters(next()) + &letters(next()))
            .collect();
        let text = words.join(" ");
        let filter = filter_of(&text);
        assert!(!filter.is_full());
        let folded = super::super::tokenize::fold(&text);
        let (mut absent, mut admitted) = (0, 0);
        for _ in 0..20_000 {
            let needle = letters(next());
            if folded.contains(&needle) {
                continue;
            }
            absent += 1;
            admitted += usize::from(GramProbe::of(&needle).expect("grams").admits(&filter));
        }
        let rate = admitted as f64 / absent as f64;
        assert!(rate < 0.01, "{admitted} of {absent} absent grams admitted");
    }

    #[test]
    fn a_filter_fills_up_with_dense_text() {
        let mut filter = GramFilter::default();
        let mut state = 1u64;
        let mut added = 0;
        while !filter.is_full() {
            state = mix(state);
            filter.add(&format!("{state:x}"));
            added += 1;
            assert!(added < 10_000, "never full");
        }
        assert!(added > 50);
    }
}
