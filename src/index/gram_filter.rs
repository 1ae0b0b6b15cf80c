//! Bloom filters of trigrams, telling which groups of consecutive passages, and then which
//! passages of a group, may hold a substring. A filter never says no to a gram it was given,
//! so a substring search that checks the text of everything admitted loses no hit; a false
//! yes costs one check.
//!
//! Why not trigram postings in tantivy: they were half of indexing's CPU (about 300 ns per
//! distinct gram of each group in its postings writer), where setting a filter's bits costs a
//! few nanoseconds per gram. Filters are stored as fast-field words (a group's on its first
//! passage); a query reads only the words its grams' bits fall in.
//!
//! The layout is part of the index format: changing a constant or the hash asks for a
//! rebuild (rename the field in `text.rs`).

use super::tokenize::for_each_gram;

/// A group's filter: 16,384 bits, 5 per gram. With a group's usual 1,100 distinct grams,
/// about 0.2% of groups admit a gram they lack; at the fill limit, about 1%.
pub type GroupFilter = GramFilter<256, 5>;
/// A passage's filter: 1,024 bits, 3 per gram. It spares a search reading the passages of an
/// admitted group that cannot hold the needle (about 14% admit one gram they lack, at a
/// passage's usual 250 distinct grams; 0.14^n for a needle of n grams).
pub type PassageFilter = GramFilter<16, 3>;
pub type GroupProbe = GramProbe<256, 5>;
pub type PassageProbe = GramProbe<16, 3>;
/// A group takes no further passage once this share of its filter's bits is set (about 1,670
/// distinct grams), so that dense text does not turn a filter into a yes to everything.
const FILL_LIMIT: f64 = 0.4;

/// A Bloom filter of grams: `WORDS` 64-bit words, `PROBES` bits per gram.
#[derive(Clone)]
pub struct GramFilter<const WORDS: usize, const PROBES: u32> {
    words: Box<[u64; WORDS]>,
}

impl<const WORDS: usize, const PROBES: u32> Default for GramFilter<WORDS, PROBES> {
    fn default() -> Self {
        Self {
            words: Box::new([0; WORDS]),
        }
    }
}

impl<const WORDS: usize, const PROBES: u32> GramFilter<WORDS, PROBES> {
    pub const WORDS: usize = WORDS;

    /// Adds every gram of `text`.
    pub fn add(&mut self, text: &str) {
        for_each_gram(text, |gram| self.add_hash(mix(gram)));
    }

    /// Adds a gram by its [`gram_hashes`] value.
    pub fn add_hash(&mut self, hash: u64) {
        for bit in probes::<WORDS, PROBES>(hash) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Whether so many of its bits are set (`FILL_LIMIT`) that a group should take no further
    /// passage.
    pub fn is_full(&self) -> bool {
        let set: u32 = self.words.iter().map(|word| word.count_ones()).sum();
        f64::from(set) >= FILL_LIMIT * (WORDS * 64) as f64
    }

    pub fn words(&self) -> &[u64; WORDS] {
        &self.words
    }
}

/// The hashes of `text`'s grams, repeats included, for adding them to several filters.
pub fn gram_hashes(text: &str, into: &mut Vec<u64>) {
    into.clear();
    for_each_gram(text, |gram| into.push(mix(gram)));
}

/// What a needle asks of a filter: for each word its grams' bits fall in, the bits that must
/// be set there, so that a filter is tested with one read per such word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GramProbe<const WORDS: usize, const PROBES: u32> {
    required: Vec<(usize, u64)>,
}

impl<const WORDS: usize, const PROBES: u32> GramProbe<WORDS, PROBES> {
    /// None when the needle has no gram (fewer than three characters once folded).
    pub fn of(needle: &str) -> Option<Self> {
        let mut asked = GramFilter::<WORDS, PROBES>::default();
        asked.add(needle);
        let required: Vec<(usize, u64)> = asked
            .words
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, bits)| *bits != 0)
            .collect();
        (!required.is_empty()).then_some(Self { required })
    }

    /// (word, bits) pairs; a filter may hold the needle only if each word has all its bits.
    pub fn required(&self) -> &[(usize, u64)] {
        &self.required
    }

    /// Whether the filter whose words `word` reads may hold the needle; stops at the first
    /// word that says no.
    pub fn admits_words(&self, mut word: impl FnMut(usize) -> u64) -> bool {
        self.required
            .iter()
            .all(|&(at, bits)| word(at) & bits == bits)
    }

    pub fn admits(&self, filter: &GramFilter<WORDS, PROBES>) -> bool {
        self.admits_words(|at| filter.words[at])
    }
}

/// The bits of a gram's hash in a filter of `WORDS` words: double hashing (Kirsch and
/// Mitzenmacher).
fn probes<const WORDS: usize, const PROBES: u32>(hash: u64) -> impl Iterator<Item = usize> {
    let (first, step) = (hash as u32, (hash >> 32) as u32 | 1);
    let bits = (WORDS * 64) as u32;
    (0..PROBES).map(move |at| (first.wrapping_add(at.wrapping_mul(step)) % bits) as usize)
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

    fn filter_of<const WORDS: usize, const PROBES: u32>(text: &str) -> GramFilter<WORDS, PROBES> {
        let mut filter = GramFilter::default();
        filter.add(text);
        filter
    }

    #[test]
    fn a_filter_admits_every_substring_of_its_text() {
        let text = "  def _SiftDown_Max(heap,\n\t\tstartpos, pos):  # Straße \u{212A}elvin";
        let (group, passage) = (filter_of::<256, 5>(text), filter_of::<16, 3>(text));
        let characters: Vec<(usize, char)> = text.char_indices().collect();
        for from in 0..characters.len() {
            for to in from + 3..=characters.len() {
                let end = characters.get(to).map_or(text.len(), |(at, _)| *at);
                let window = &text[characters[from].0..end];
                if let Some(probe) = GroupProbe::of(window) {
                    assert!(probe.admits(&group), "{window:?}");
                }
                if let Some(probe) = PassageProbe::of(window) {
                    assert!(probe.admits(&passage), "{window:?}");
                }
            }
        }
        // Case and runs of white space fold as the exact check folds them.
        let probe = GroupProbe::of("SIFTDOWN_max(HEAP, startpos").expect("grams");
        assert!(probe.admits(&group));
    }

    #[test]
    fn needles_shorter_than_a_gram_ask_nothing() {
        assert_eq!(GroupProbe::of("ab"), None);
        assert_eq!(GroupProbe::of("   "), None);
        assert!(GroupProbe::of("a b").is_some());
    }

    /// The share of random three-letter grams absent from a text of `words` random words (seven
    /// distinct grams each) that a filter of the text admits.
    fn false_admissions<const WORDS: usize, const PROBES: u32>(words: usize) -> f64 {
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
        let words: Vec<String> = (0..words)
            .map(|_| letters(next()) + &letters(next()))
            .collect();
        let text = words.join(" ");
        let mut filter = GramFilter::<WORDS, PROBES>::default();
        filter.add(&text);
        let folded = super::super::tokenize::fold(&text);
        let (mut absent, mut admitted) = (0, 0);
        for _ in 0..20_000 {
            let needle = letters(next());
            if folded.contains(&needle) {
                continue;
            }
            absent += 1;
            let probe = GramProbe::<WORDS, PROBES>::of(&needle).expect("grams");
            admitted += usize::from(probe.admits(&filter));
        }
        admitted as f64 / absent as f64
    }

    /// Filters of real-sized groups and passages admit about as many absent grams as their
    /// fill predicts (0.2% and 14%).
    #[test]
    fn false_admissions_are_as_rare_as_the_fill_predicts() {
        let group = false_admissions::<256, 5>(160);
        assert!(
            group < 0.01,
            "a group's filter admits {group} of absent grams"
        );
        let passage = false_admissions::<16, 3>(36);
        assert!(
            passage < 0.25,
            "a passage's filter admits {passage} of absent grams"
        );
    }

    #[test]
    fn a_filter_fills_up_with_dense_text() {
        let mut filter = GroupFilter::default();
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
