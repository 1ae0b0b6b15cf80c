//! The `health` figures in Prometheus text format (version 0.0.4), for `stats://metrics`.

use std::fmt::Write;

use super::Health;

/// Renders `health` as Prometheus metrics, every name prefixed `context_store_`.
pub fn render(health: &Health) -> String {
    let mut out = Metrics::default();
    out.gauge("up", "1 while the process serves", &[], 1.0);
    out.gauge(
        "info",
        "version of the running binary",
        &[("version", &health.version)],
        1.0,
    );
    out.gauge(
        "uptime_seconds",
        "seconds since start",
        &[],
        health.uptime_secs as f64,
    );
    database(&mut out, health);
    redis(&mut out, health);
    index(&mut out, health);
    cache(&mut out, health);
    tools(&mut out, health);
    out.text
}

fn database(out: &mut Metrics, health: &Health) {
    let database = &health.database;
    out.gauge(
        "database_damaged",
        "1 when the database file is damaged and writes are refused",
        &[],
        flag(database.damaged.is_some()),
    );
    out.gauge(
        "database_reachable",
        "1 when a query reached the file",
        &[],
        flag(database.reachable),
    );
    out.gauge(
        "database_schema_version",
        "schema version of the database",
        &[],
        database.schema_version.unwrap_or(0) as f64,
    );
    out.gauge(
        "database_file_bytes",
        "size of the database file",
        &[],
        database.file_bytes as f64,
    );
    out.gauge(
        "database_wal_bytes",
        "size of the write-ahead log",
        &[],
        database.wal_bytes as f64,
    );
}

fn redis(out: &mut Metrics, health: &Health) {
    let redis = &health.redis;
    out.gauge(
        "redis_configured",
        "1 when an L2 Redis is configured",
        &[],
        flag(redis.configured),
    );
    out.gauge(
        "redis_up",
        "1 when Redis answered a PING just now",
        &[],
        flag(redis.state == "up"),
    );
    if let Some(micros) = redis.round_trip_us {
        out.gauge(
            "redis_round_trip_seconds",
            "round trip of a PING",
            &[],
            micros as f64 / 1e6,
        );
    }
}

fn index(out: &mut Metrics, health: &Health) {
    let index = &health.index;
    out.gauge(
        "index_documents",
        "indexed documents",
        &[],
        index.documents as f64,
    );
    out.gauge("index_chunks", "indexed passages", &[], index.chunks as f64);
    out.gauge(
        "index_segments",
        "segments of the full-text index",
        &[],
        index.segments as f64,
    );
    let pending = [
        ("files", index.pending.files),
        ("chunks", index.pending.chunks),
        ("messages", index.pending.messages),
    ];
    for (kind, count) in pending {
        out.gauge(
            "index_pending",
            "work waiting, by kind",
            &[("kind", kind)],
            count as f64,
        );
    }
    out.gauge(
        "embedder_ready",
        "1 when the embedding model is loaded",
        &[],
        flag(health.embedder.state == "ready"),
    );
}

fn cache(out: &mut Metrics, health: &Health) {
    let cache = &health.cache;
    let mut tiers = vec![("l1", cache.l1.hits, cache.l1.misses)];
    if let Some(l2) = &cache.l2 {
        tiers.push(("l2", l2.hits, l2.misses));
    }
    for (tier, hits, misses) in tiers {
        out.counter(
            "cache_hits_total",
            "cache hits by tier",
            &[("tier", tier)],
            hits as f64,
        );
        out.counter(
            "cache_misses_total",
            "cache misses by tier",
            &[("tier", tier)],
            misses as f64,
        );
    }
    out.counter(
        "cache_loads_total",
        "reads that went to SQLite",
        &[],
        cache.l3_loads as f64,
    );
    out.gauge(
        "cache_entries",
        "entries in the in-process cache",
        &[],
        cache.l1.entries as f64,
    );
    out.gauge(
        "cache_bytes",
        "weighted bytes in the in-process cache",
        &[],
        cache.l1.weighted_bytes as f64,
    );
}

fn tools(out: &mut Metrics, health: &Health) {
    for tool in &health.tools {
        let name = [("tool", tool.name.as_str())];
        out.counter("tool_calls_total", "tool calls", &name, tool.calls as f64);
        out.counter(
            "tool_errors_total",
            "tool calls that failed",
            &name,
            tool.errors as f64,
        );
        let quantiles = [
            ("0.5", tool.p50_us),
            ("0.95", tool.p95_us),
            ("0.99", tool.p99_us),
        ];
        for (quantile, micros) in quantiles {
            out.sample(
                "tool_latency_seconds",
                "summary",
                "tool call latency",
                &[("tool", &tool.name), ("quantile", quantile)],
                micros as f64 / 1e6,
            );
        }
        out.sample(
            "tool_latency_seconds_sum",
            "",
            "",
            &name,
            tool.total_us as f64 / 1e6,
        );
        out.sample(
            "tool_latency_seconds_count",
            "",
            "",
            &name,
            tool.calls as f64,
        );
    }
}

fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// Text under construction; writes `# HELP` and `# TYPE` once per metric name.
#[derive(Default)]
struct Metrics {
    text: String,
    described: Vec<&'static str>,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "gauge", help, labels, value);
    }

    fn counter(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, "counter", help, labels, value);
    }

    /// One sample; an empty `kind` belongs to the metric described before it.
    fn sample(
        &mut self,
        name: &'static str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if !kind.is_empty() && !self.described.contains(&name) {
            self.described.push(name);
            let _ = writeln!(self.text, "# HELP context_store_{name} {help}");
            let _ = writeln!(self.text, "# TYPE context_store_{name} {kind}");
        }
        let _ = write!(self.text, "context_store_{name}");
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.text, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.text, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_types_declared_once() {
        let mut out = Metrics::default();
        out.counter("calls_total", "calls", &[("tool", "a\"b")], 1.0);
        out.counter("calls_total", "calls", &[("tool", "c")], 2.0);
        assert_eq!(
            out.text,
            "# HELP context_store_calls_total calls\n# TYPE context_store_calls_total counter\n\
             context_store_calls_total{tool=\"a\\\"b\"} 1\ncontext_store_calls_total{tool=\"c\"} 2\n"
        );
    }
}
