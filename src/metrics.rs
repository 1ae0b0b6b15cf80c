//! Per-tool call counts, errors and latency histograms of this process.
//!
//! One HDR histogram per tool, 2 significant figures from 1 µs to an hour: about 20 KiB each,
//! made on a tool's first call. Recording takes a short lock; calls are far apart compared
//! with it.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const LOWEST_MICROS: u64 = 1;
const HIGHEST_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_FIGURES: u8 = 2;

/// Figures of one tool since the process started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolFigures {
    pub name: String,
    pub calls: u64,
    /// Calls that ended in a tool error or a protocol error.
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Sum of all latencies (for Prometheus summaries).
    pub total_us: u64,
}

struct ToolRecord {
    errors: u64,
    total_us: u64,
    latency: Histogram<u64>,
}

impl ToolRecord {
    fn new() -> Self {
        let latency =
            Histogram::new_with_bounds(LOWEST_MICROS, HIGHEST_MICROS, SIGNIFICANT_FIGURES)
                .expect("constant bounds are valid");
        Self {
            errors: 0,
            total_us: 0,
            latency,
        }
    }
}

#[derive(Default)]
pub struct CallMetrics {
    tools: Mutex<BTreeMap<String, ToolRecord>>,
}

impl CallMetrics {
    pub fn record(&self, tool: &str, elapsed: Duration, failed: bool) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut tools = self
            .tools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !tools.contains_key(tool) {
            tools.insert(tool.to_owned(), ToolRecord::new());
        }
        let record = tools.get_mut(tool).expect("inserted above");
        record.latency.saturating_record(micros.max(LOWEST_MICROS));
        record.total_us = record.total_us.saturating_add(micros);
        record.errors += u64::from(failed);
    }

    /// Every tool called so far, by name.
    pub fn snapshot(&self) -> Vec<ToolFigures> {
        let tools = self
            .tools
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tools
            .iter()
            .map(|(name, record)| ToolFigures {
                name: name.clone(),
                calls: record.latency.len(),
                errors: record.errors,
                p50_us: record.latency.value_at_quantile(0.50),
                p95_us: record.latency.value_at_quantile(0.95),
                p99_us: record.latency.value_at_quantile(0.99),
                max_us: record.latency.max(),
                total_us: record.total_us,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let metrics = CallMetrics::default();
        for micros in 1..=100 {
            metrics.record("save", Duration::from_micros(micros * 10), micros % 10 == 0);
        }
        metrics.record("get", Duration::from_millis(3), false);
        let figures = metrics.snapshot();
        assert_eq!(figures.len(), 2);
        let save = figures.iter().find(|tool| tool.name == "save").unwrap();
        assert_eq!((save.calls, save.errors), (100, 10));
        // Two significant figures: within 1 % of the exact value.
        assert!((495..=505).contains(&save.p50_us), "{save:?}");
        assert!((985..=1000).contains(&save.p99_us), "{save:?}");
        assert!((995..=1010).contains(&save.max_us), "{save:?}");
        assert_eq!(save.total_us, (1..=100).map(|n| n * 10).sum::<u64>());
    }
}
