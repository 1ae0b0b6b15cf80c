//! A byte budget for one tool result, counted in serialised JSON.
//!
//! Clients cut long tool results; cutting here instead, at item boundaries, lets the
//! response say what it left out and where to continue.

use serde::Serialize;

/// Room kept for the envelope around the items (field names, flags, cursor).
const ENVELOPE_BYTES: usize = 512;

#[derive(Debug)]
pub struct ResponseBudget {
    remaining: usize,
}

impl ResponseBudget {
    pub fn new(max_bytes: usize) -> Self {
        Self {
            remaining: max_bytes.saturating_sub(ENVELOPE_BYTES),
        }
    }

    /// Charges `item` if it fits and says whether it did; an item that does not fit
    /// is not charged.
    pub fn take(&mut self, item: &impl Serialize) -> bool {
        // The comma between items.
        let size = json_len(item) + 1;
        if size > self.remaining {
            return false;
        }
        self.remaining -= size;
        true
    }
}

fn json_len(item: &impl Serialize) -> usize {
    use crate::counting::ByteCounter;
    let mut counter = ByteCounter(0);
    // Counting into a sink avoids building the string only to measure it.
    match serde_json::to_writer(&mut counter, item) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_serialised_bytes_including_escapes() {
        assert_eq!(json_len(&"a\"b"), 6);
    }

    #[test]
    fn refuses_what_does_not_fit_and_charges_what_does() {
        let mut budget = ResponseBudget::new(ENVELOPE_BYTES + 10);
        assert!(budget.take(&"12345"));
        assert!(!budget.take(&"123"));
        assert!(budget.take(&1));
    }
}
