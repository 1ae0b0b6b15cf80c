//! Exact substrings through gram filters (`gram_filter.rs`): which groups of passages, and
//! then which passages of a group, may hold a needle; the passages admitted are checked
//! against their text, so hits are exact. A group's filter is stored on its first passage,
//! each passage's own on it (see the schema in `text.rs`).

use tantivy::{
    DocAddress, DocSet, Searcher, TERMINATED, TantivyDocument, Term,
    columnar::Column,
    query::EnableScoring,
    schema::{IndexRecordOption, Value},
};

use super::{
    FILTER_FIELD, FILTER_GROUP_FIELD, IndexError, IndexedPassage, PASSAGE_FILTER_FIELD, TextFilter,
    TextHit, TextIndex,
};
use crate::index::{
    gram_filter::{GroupFilter, GroupProbe, PassageFilter, PassageProbe, gram_hashes},
    tokenize::Needle,
};

/// Most passages in a group under one gram filter (fewer when the filter fills): a substring
/// search checks at most this many passages per admitted group, and each group's filter is
/// 2 KiB (CPython: 45,000 passages, 6,000 groups).
const GRAM_GROUP_PASSAGES: usize = 8;

impl TextIndex {
    /// Passages that contain `needle` exactly (case-insensitive, white space folded), in the
    /// order of their groups' keys (documents in the order they were first indexed, lines in
    /// order within one) until `limit` pass. The groups' filters say which groups may hold the
    /// needle, and each such group's passages are checked once.
    pub fn search_substring(
        &self,
        needle: &str,
        limit: usize,
        filter: TextFilter<'_>,
    ) -> Result<Vec<TextHit>, IndexError> {
        let (Some(group_probe), Some(passage_probe)) =
            (GroupProbe::of(needle), PassageProbe::of(needle))
        else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let groups = self.admitted_groups(&searcher, &group_probe, filter)?;
        let mut check = PassageCheck {
            needle: Needle::new(needle),
            probe: passage_probe,
            filters: searcher
                .segment_readers()
                .iter()
                .map(|reader| reader.fast_fields().u64(PASSAGE_FILTER_FIELD))
                .collect::<Result<_, _>>()?,
            read: 0,
            groups_without: 0,
        };
        let limit = limit.max(1);
        let mut hits = Vec::new();
        let admitted = groups.len();
        for group in groups {
            let found = self.passages_holding(&searcher, group, &mut check)?;
            check.groups_without += usize::from(found.is_empty());
            for hit in found {
                hits.push(hit);
                if hits.len() == limit {
                    check.report(admitted, hits.len());
                    return Ok(hits);
                }
            }
        }
        check.report(admitted, hits.len());
        Ok(hits)
    }

    /// The keys of the live groups whose filters admit `probe`, of documents `filter` admits,
    /// in order. A query reads only the filter words its grams' bits fall in, and reads a
    /// word only for the groups every earlier word admitted.
    fn admitted_groups(
        &self,
        searcher: &Searcher,
        probe: &GroupProbe,
        filter: TextFilter<'_>,
    ) -> Result<Vec<u64>, IndexError> {
        let restriction = self
            .restriction(filter)
            .map(|query| query.weight(EnableScoring::disabled_from_searcher(searcher)))
            .transpose()?;
        let mut keys = Vec::new();
        for reader in searcher.segment_readers() {
            let group_keys = reader.fast_fields().u64(FILTER_GROUP_FIELD)?;
            let words = reader.fast_fields().u64(FILTER_FIELD)?;
            let groups = group_keys.values.num_vals();
            if words.values.num_vals() as usize != groups as usize * GroupFilter::WORDS {
                return Err(IndexError::Filters(format!(
                    "{} words for {groups} groups",
                    words.values.num_vals()
                )));
            }
            // Ranks among the segment's groups: a group's words are the values from
            // rank * GroupFilter::WORDS on, and its key is value `rank` of the key column.
            let mut ranks: Vec<u32> = (0..groups).collect();
            for &(word, bits) in probe.required() {
                ranks.retain(|&rank| {
                    let at = rank * GroupFilter::WORDS as u32 + word as u32;
                    words.values.get_val(at) & bits == bits
                });
                if ranks.is_empty() {
                    break;
                }
            }
            let mut docs = ranks.clone();
            group_keys.index.select_batch_in_place(0, &mut docs);
            let mut allowed = restriction
                .as_ref()
                .map(|weight| weight.scorer(reader, 1.0))
                .transpose()?;
            let alive = reader.alive_bitset();
            for (rank, doc) in ranks.into_iter().zip(docs) {
                // A replaced document's old groups: their keys live on in the new version
                // only if its own filter admits the needle.
                if alive.is_some_and(|alive| !alive.is_alive(doc)) {
                    continue;
                }
                if let Some(allowed) = allowed.as_mut() {
                    // Docs come in ascending order, so the filter's docs are walked once.
                    let at = match allowed.doc() {
                        current if current < doc => allowed.seek(doc),
                        current => current,
                    };
                    if at != doc {
                        continue;
                    }
                }
                keys.push(group_keys.values.get_val(rank));
            }
        }
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// The passages of `group` that hold the needle, in line order, each scored by how many
    /// times it holds it. Only the passages whose own filters admit it are read.
    fn passages_holding(
        &self,
        searcher: &Searcher,
        group: u64,
        check: &mut PassageCheck,
    ) -> Result<Vec<TextHit>, IndexError> {
        let mut hits = Vec::new();
        for address in self.group_members(searcher, group)? {
            if !check.may_hold(address) {
                continue;
            }
            let document: TantivyDocument = searcher.doc(address)?;
            let text = document
                .get_first(self.fields.text)
                .and_then(|value| value.as_str())
                .unwrap_or_default();
            let occurrences = check.needle.occurrences_in(text);
            if occurrences > 0 {
                hits.push(self.hit(&document, occurrences as f32));
            }
        }
        hits.sort_by_key(|hit| hit.start_line);
        Ok(hits)
    }

    /// The live passages of `group`, read from its posting lists (cheaper than a search).
    fn group_members(
        &self,
        searcher: &Searcher,
        group: u64,
    ) -> Result<Vec<DocAddress>, IndexError> {
        let term = Term::from_field_u64(self.fields.group, group);
        let mut members = Vec::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let postings = reader
                .inverted_index(self.fields.group)?
                .read_postings(&term, IndexRecordOption::Basic)
                .map_err(|error| tantivy::TantivyError::IoError(error.into()))?;
            let Some(mut postings) = postings else {
                continue;
            };
            let alive = reader.alive_bitset();
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|alive| alive.is_alive(doc)) {
                    members.push(DocAddress::new(ord as u32, doc));
                }
                doc = postings.advance();
            }
        }
        Ok(members)
    }
}

/// What a substring search asks of each passage of an admitted group.
struct PassageCheck {
    needle: Needle,
    probe: PassageProbe,
    /// Each segment's passage filter column.
    filters: Vec<Column<u64>>,
    /// Passages whose own filters admitted the needle, and so were read.
    read: usize,
    /// Groups checked that held the needle in no passage.
    groups_without: usize,
}

impl PassageCheck {
    /// Whether the passage's own filter admits the needle (true when it has none).
    fn may_hold(&mut self, address: DocAddress) -> bool {
        let column = &self.filters[address.segment_ord as usize];
        let rows = column.index.value_row_ids(address.doc_id);
        let admitted = rows.len() != PassageFilter::WORDS
            || self
                .probe
                .admits_words(|word| column.values.get_val(rows.start + word as u32));
        self.read += usize::from(admitted);
        admitted
    }

    /// How well the filters did, for tuning them: a group or passage admitted without the
    /// needle is a false admission.
    fn report(&self, admitted: usize, hits: usize) {
        tracing::debug!(
            groups_admitted = admitted,
            groups_without_it = self.groups_without,
            passages_read = self.read,
            passages_holding = hits,
            "substring search"
        );
    }
}

/// A group of passages under one gram filter, with each passage's own filter.
#[derive(Default)]
pub(super) struct GramGroup {
    pub(super) filter: GroupFilter,
    pub(super) passages: Vec<PassageFilter>,
}

/// A document's passages cut into groups for the gram filters: runs of consecutive passages,
/// at most `GRAM_GROUP_PASSAGES`, fewer where dense text fills a group's filter.
pub(super) fn gram_groups(passages: &[IndexedPassage<'_>]) -> Vec<GramGroup> {
    let mut groups = Vec::new();
    let mut current = GramGroup::default();
    let mut hashes = Vec::new();
    for passage in passages {
        gram_hashes(passage.text, &mut hashes);
        let mut own = PassageFilter::default();
        for &hash in &hashes {
            current.filter.add_hash(hash);
            own.add_hash(hash);
        }
        current.passages.push(own);
        if current.passages.len() == GRAM_GROUP_PASSAGES || current.filter.is_full() {
            groups.push(std::mem::take(&mut current));
        }
    }
    if !current.passages.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::{
        super::{
            MIN_SUBSTRING_CHARS,
            tests::{chunk, indexed, paths},
        },
        *,
    };

    #[test]
    fn substrings_inside_identifiers_match_exactly() {
        let (_dir, index) = indexed();
        assert_eq!(
            paths(
                &index
                    .search_substring("siftdown_ma", 10, TextFilter::default())
                    .unwrap()
            ),
            ["heapq.py"]
        );
        assert_eq!(
            paths(
                &index
                    .search_substring("URL_BYTES", 10, TextFilter::default())
                    .unwrap()
            ),
            ["urls.py"]
        );
        assert_eq!(
            paths(
                &index
                    .search_substring("longest_m", 10, TextFilter::default())
                    .unwrap()
            ),
            ["difflib.py"]
        );
        // Every trigram of "siftup_max" exists somewhere, but not in this order.
        assert!(
            index
                .search_substring("siftup_max", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
        assert!(
            index
                .search_substring("down_maxx", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn admitted_groups_are_checked_and_decoys_never_pass() {
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert!(index.acquire_writer().unwrap());
        // 60 files hold both grams of "abcd" but never the word, so every filter admits it;
        // they come before the one file that holds it.
        let decoys: Vec<String> = (0..60).map(|n| format!("abc bcd {n}")).collect();
        for (n, text) in decoys.iter().enumerate() {
            let path = format!("decoy{n}.txt");
            index
                .replace_document(10 + n as u64, "/ws", &path, &[chunk(text, 1)])
                .unwrap();
        }
        let real = format!("{} ABCD {}", "filler words ".repeat(40), "more ".repeat(40));
        index
            .replace_document(100, "/ws", "real.txt", &[chunk(&real, 1)])
            .unwrap();
        index.commit().unwrap();
        let hits = index
            .search_substring("abcd", 1, TextFilter::default())
            .unwrap();
        assert_eq!(paths(&hits), ["real.txt"]);
        assert_eq!(
            paths(
                &index
                    .search_substring("abcd", 10, TextFilter::default())
                    .unwrap()
            ),
            ["real.txt"]
        );
        // White space is folded on both sides.
        assert_eq!(
            paths(
                &index
                    .search_substring("bc   bcd 1", 100, TextFilter::default())
                    .unwrap()
            )
            .len(),
            11
        );
    }

    #[test]
    fn a_substring_is_found_in_any_passage_of_any_group_once() {
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert!(index.acquire_writer().unwrap());
        let mut texts: Vec<String> = (1..=12).map(|line| format!("x = {line}\n")).collect();
        texts[0] = "import heapq\n".into();
        texts[1] = "def push(heap, item):\n".into();
        texts[2] = "    heap.append(item); _siftdown(heap)\n".into();
        texts[3] = "def pop(heap):\n    _siftdown(heap)\n    return _siftdown(heap)\n".into();
        // Past the first group of passages.
        texts[10] = "_SIFTDOWN(heap)\n".into();
        let passages: Vec<IndexedPassage<'_>> = texts
            .iter()
            .enumerate()
            .map(|(at, text)| chunk(text, at as u32 + 1))
            .collect();
        index
            .replace_document(1, "/ws", "heapq.py", &passages)
            .unwrap();
        index.commit().unwrap();
        assert_eq!(index.passages(), 12);
        let hits = index
            .search_substring("_siftdown(", 10, TextFilter::default())
            .unwrap();
        // In line order, each scored by how many times it holds the needle.
        let found: Vec<(u32, f32)> = hits.iter().map(|hit| (hit.start_line, hit.score)).collect();
        assert_eq!(found, [(3, 1.0), (4, 2.0), (11, 1.0)], "each passage once");
        assert_eq!(
            index
                .search_substring("_siftdown(", 1, TextFilter::default())
                .unwrap()
                .len(),
            1
        );
        // Grams of a group that no one passage holds in order find nothing.
        assert!(
            index
                .search_substring("heapq def", 10, TextFilter::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn substring_search_keeps_to_the_filter() {
        let (_dir, index) = indexed();
        let in_workspace = |root| TextFilter {
            workspace: Some(root),
            ..TextFilter::default()
        };
        // "def _" is in heapq.py (/ws) and argparse.py (/other).
        let all = index
            .search_substring("def _", 10, TextFilter::default())
            .unwrap();
        assert_eq!(paths(&all), ["heapq.py", "argparse.py"]);
        let hits = index.search_substring("def _", 10, in_workspace("/other"));
        assert_eq!(paths(&hits.unwrap()), ["argparse.py"]);
        let documents = HashSet::from([1, 4]);
        let only = TextFilter {
            workspace: Some("/ws"),
            documents: Some(&documents),
        };
        let hits = index.search_substring("def _", 10, only).unwrap();
        assert_eq!(paths(&hits), ["heapq.py"]);
        let hits = index.search_substring("def _", 10, in_workspace("/nowhere"));
        assert!(hits.unwrap().is_empty());
    }

    #[test]
    fn dense_text_fills_a_group_before_eight_passages() {
        let plain: Vec<String> = (0..20).map(|n| format!("x = {n}\n")).collect();
        let passages: Vec<IndexedPassage<'_>> = plain.iter().map(|text| chunk(text, 1)).collect();
        let sizes: Vec<usize> = gram_groups(&passages)
            .iter()
            .map(|group| group.passages.len())
            .collect();
        assert_eq!(sizes, [8, 8, 4]);
        // Hex digests: about 1,000 distinct grams per passage.
        let dense: Vec<String> = (0..8u64)
            .map(|n| {
                (0..64)
                    .map(|at| format!("{:016x}", (n * 64 + at).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
                    .collect()
            })
            .collect();
        let passages: Vec<IndexedPassage<'_>> = dense.iter().map(|text| chunk(text, 1)).collect();
        let groups = gram_groups(&passages);
        assert!(groups.len() > 2, "{} groups", groups.len());
        let sizes = groups.iter().map(|group| group.passages.len());
        assert_eq!(sizes.sum::<usize>(), 8);
    }

    /// Substring search against a brute-force scan of the live passages, over documents of
    /// many passages written in several commits (so groups span segments and indexing
    /// threads), some replaced and some deleted, before and after a merge: every passage
    /// that holds a needle is found, and nothing else.
    #[test]
    fn substring_search_finds_exactly_what_a_scan_finds() {
        const WORDS: &[&str] = &[
            "heap",
            "push",
            "_siftdown",
            "Matcher",
            "url",
            "split",
            "key",
            "self",
            "def",
            "return",
            "None",
            "x",
            "(",
            ")",
            ":",
            "\n    ",
            "straße",
            "ÉTÉ",
            "0x1F",
        ];
        let mut state = 7u64;
        let mut next = move |below: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 33) % below as u64) as usize
        };
        let mut text_of = |words: usize| -> String {
            (0..words)
                .map(|_| WORDS[next(WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        };
        let dir = tempfile::tempdir().unwrap();
        let index = TextIndex::open(dir.path()).unwrap();
        assert!(index.acquire_writer().unwrap());
        // Live documents: id -> (path, passages).
        let mut live: HashMap<u64, (String, Vec<String>)> = HashMap::new();
        for round in 0..3u64 {
            for n in 0..25u64 {
                let id = if round == 2 { n * 3 } else { round * 100 + n };
                let passages: Vec<String> = (0..1 + (n % 20)).map(|_| text_of(40)).collect();
                let chunks: Vec<IndexedPassage<'_>> = passages
                    .iter()
                    .enumerate()
                    .map(|(at, text)| chunk(text, at as u32 + 1))
                    .collect();
                let path = format!("doc{id}.py");
                index.replace_document(id, "/ws", &path, &chunks).unwrap();
                live.insert(id, (path, passages));
            }
            for id in [round * 100 + 5, round * 100 + 17] {
                index.delete_document(id).unwrap();
                live.remove(&id);
            }
            index.commit().unwrap();
        }
        let mut needles: Vec<String> = vec!["siftdown_".into(), "é ét".into(), "x ( x".into()];
        for _ in 0..40 {
            let (_, passages) = live.values().nth(next(live.len())).unwrap();
            let text: Vec<char> = passages[next(passages.len())].chars().collect();
            let from = next(text.len() - 12);
            let needle: String = text[from..from + 3 + next(9)].iter().collect();
            // Shorter once folded finds nothing by design (the engine refuses it).
            if crate::index::fold(&needle).chars().count() >= MIN_SUBSTRING_CHARS {
                needles.push(needle);
            }
        }
        let check = |index: &TextIndex| {
            for needle in &needles {
                let mut expected: Vec<(String, u32)> = Vec::new();
                for (path, passages) in live.values() {
                    for (at, text) in passages.iter().enumerate() {
                        if Needle::new(needle).found_in(text) {
                            expected.push((path.clone(), at as u32 + 1));
                        }
                    }
                }
                let hits = index
                    .search_substring(needle, 100_000, TextFilter::default())
                    .unwrap();
                let mut found: Vec<(String, u32)> = hits
                    .into_iter()
                    .map(|hit| (hit.path, hit.start_line))
                    .collect();
                expected.sort();
                found.sort();
                assert_eq!(found, expected, "{needle:?}");
            }
        };
        assert!(index.segments() > 1);
        check(&index);
        assert!(index.merge_segments().unwrap());
        check(&index);
    }
}
