//! What `mdhub run` adds to `/v1/status` and `/metrics`: feed states and
//! the ingest stage's counters.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use mdhub_feeds::{FeedState, FeedStatus};
use mdhub_gateway::{MetricsSource, StatusSource};

use crate::ingest::IngestStats;

/// Feed states (`feeds` in `/v1/status`, `mdhub_feed_*` metrics).
#[derive(Debug)]
pub(crate) struct Feeds(pub(crate) Vec<Arc<FeedStatus>>);

impl StatusSource for Feeds {
    fn section(&self) -> &str {
        "feeds"
    }
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.0.iter().map(|s| s.snapshot()).collect::<Vec<_>>())
            .unwrap_or_default()
    }
}

impl MetricsSource for Feeds {
    fn render(&self, out: &mut String) {
        let snaps: Vec<_> = self.0.iter().map(|s| s.snapshot()).collect();
        let mut family =
            |name: &str,
             kind: &str,
             help: &str,
             f: &dyn Fn(&mdhub_feeds::FeedStatusSnapshot) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for s in &snaps {
                    let _ = writeln!(out, "{name}{{venue=\"{}\"}} {}", s.venue, f(s));
                }
            };
        family(
            "mdhub_feed_events_total",
            "counter",
            "Normalized events sent downstream.",
            &|s| s.events,
        );
        family(
            "mdhub_feed_dropped_total",
            "counter",
            "Venue messages dropped as invalid.",
            &|s| s.dropped,
        );
        family(
            "mdhub_feed_reconnects_total",
            "counter",
            "Reconnections to the venue.",
            &|s| s.reconnects,
        );
        family(
            "mdhub_feed_gaps_total",
            "counter",
            "Gaps detected in the venue's stream (missed trades or sequence numbers).",
            &|s| s.gaps,
        );
        family(
            "mdhub_feed_live",
            "gauge",
            "1 while the feed is connected and subscribed.",
            &|s| u64::from(s.state == FeedState::Live),
        );
        family(
            "mdhub_feed_symbols_connected",
            "gauge",
            "Symbols whose latest feed-status event says connected.",
            &|s| s.symbols.iter().filter(|x| x.connected).count() as u64,
        );
        family(
            "mdhub_feed_symbols_disconnected",
            "gauge",
            "Symbols whose latest feed-status event says disconnected (data missing now).",
            &|s| s.symbols.iter().filter(|x| !x.connected).count() as u64,
        );
        let name = "mdhub_feed_status_events_total";
        let _ = writeln!(
            out,
            "# HELP {name} Feed-status events sent to the log, by kind.\n# TYPE {name} counter"
        );
        for s in &snaps {
            for (kind, n) in ["connected", "disconnected", "gap", "resync"]
                .iter()
                .zip(s.status_events)
            {
                let _ = writeln!(out, "{name}{{venue=\"{}\",status=\"{kind}\"}} {n}", s.venue);
            }
        }
    }
}

/// The ingest stage (`ingest` in `/v1/status`, `mdhub_ingest_*` metrics).
#[derive(Debug)]
pub(crate) struct Ingest(pub(crate) Arc<IngestStats>);

impl StatusSource for Ingest {
    fn section(&self) -> &str {
        "ingest"
    }
    fn status(&self) -> serde_json::Value {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "published": l(&self.0.published),
            "batches": l(&self.0.batches),
            "retries": l(&self.0.retries),
            "unencodable": l(&self.0.unencodable),
            "cache_errors": l(&self.0.cache_errors),
        })
    }
}

impl MetricsSource for Ingest {
    fn render(&self, out: &mut String) {
        let rows = [
            (
                "mdhub_ingest_published_total",
                "Events published to the log.",
                &self.0.published,
            ),
            (
                "mdhub_ingest_batches_total",
                "Group commits.",
                &self.0.batches,
            ),
            (
                "mdhub_ingest_retries_total",
                "Publish attempts retried.",
                &self.0.retries,
            ),
            (
                "mdhub_ingest_unencodable_total",
                "Events dropped because the log could not encode them.",
                &self.0.unencodable,
            ),
            (
                "mdhub_ingest_cache_errors_total",
                "Cache updates that failed.",
                &self.0.cache_errors,
            ),
        ];
        counters(out, &rows);
    }
}

/// The Kafka producer's counters (`mdhub_kafka_*` metrics).
#[derive(Debug)]
pub(crate) struct Kafka(pub(crate) Arc<mdhub_bus::kafka::KafkaStats>);

impl MetricsSource for Kafka {
    fn render(&self, out: &mut String) {
        let rows = [
            (
                "mdhub_kafka_delivered_total",
                "Records acknowledged by the brokers.",
                &self.0.delivered,
            ),
            (
                "mdhub_kafka_delivery_failures_total",
                "Records whose delivery failed (their batch is published again).",
                &self.0.failed,
            ),
            (
                "mdhub_kafka_buffer_full_waits_total",
                "Times publishing waited on a full producer buffer.",
                &self.0.buffer_full_waits,
            ),
        ];
        counters(out, &rows);
    }
}

/// Render `(name, help, value)` rows as Prometheus counters.
fn counters(out: &mut String, rows: &[(&str, &str, &std::sync::atomic::AtomicU64)]) {
    for (name, help, v) in rows {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            v.load(Ordering::Relaxed)
        );
    }
}

/// The cache writer (`cache_writer` in `/v1/status`, `mdhub_cache_writer_*` metrics).
#[derive(Debug)]
pub(crate) struct CacheWriter(pub(crate) Arc<crate::cache_writer::CacheWriterStats>);

impl StatusSource for CacheWriter {
    fn section(&self) -> &str {
        "cache_writer"
    }
    fn status(&self) -> serde_json::Value {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "written": l(&self.0.written),
            "batches": l(&self.0.batches),
            "errors": l(&self.0.errors),
            "undecodable": l(&self.0.undecodable),
        })
    }
}

impl MetricsSource for CacheWriter {
    fn render(&self, out: &mut String) {
        counters(
            out,
            &[
                (
                    "mdhub_cache_writer_written_total",
                    "Events written to the shared cache.",
                    &self.0.written,
                ),
                (
                    "mdhub_cache_writer_batches_total",
                    "Pipelined writes to the shared cache.",
                    &self.0.batches,
                ),
                (
                    "mdhub_cache_writer_errors_total",
                    "Shared-cache writes that failed and were retried.",
                    &self.0.errors,
                ),
                (
                    "mdhub_cache_writer_undecodable_total",
                    "Log records the cache writer skipped because they did not decode.",
                    &self.0.undecodable,
                ),
            ],
        );
    }
}

/// The archiver's counters in `/v1/status` and `/metrics`.
#[derive(Debug)]
pub(crate) struct Archiver(pub(crate) Arc<mdhub_history::archive::ArchiveStats>);

impl StatusSource for Archiver {
    fn section(&self) -> &str {
        "archiver"
    }
    fn status(&self) -> serde_json::Value {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.0;
        serde_json::json!({
            "rows_written": l(&s.rows_written),
            "files_written": l(&s.files_written),
            "bytes_written": l(&s.bytes_written),
            "flushes": l(&s.flushes),
            "buffered": l(&s.buffered),
            "rows_already_archived": l(&s.rows_already_archived),
            "undecodable": l(&s.undecodable),
            "errors": l(&s.errors),
        })
    }
}

impl MetricsSource for Archiver {
    fn render(&self, out: &mut String) {
        let s = &self.0;
        counters(
            out,
            &[
                (
                    "mdhub_archive_rows_total",
                    "Rows written to the lake.",
                    &s.rows_written,
                ),
                (
                    "mdhub_archive_files_total",
                    "Parquet files written to the lake.",
                    &s.files_written,
                ),
                (
                    "mdhub_archive_bytes_total",
                    "Bytes written to the lake.",
                    &s.bytes_written,
                ),
                (
                    "mdhub_archive_flushes_total",
                    "Archiver flushes (offsets committed after each).",
                    &s.flushes,
                ),
                (
                    "mdhub_archive_rows_already_archived_total",
                    "Rows read again after a restart that the lake already held (dropped, not duplicated).",
                    &s.rows_already_archived,
                ),
                (
                    "mdhub_archive_undecodable_total",
                    "Log records the archiver skipped because they did not decode.",
                    &s.undecodable,
                ),
                (
                    "mdhub_archive_errors_total",
                    "Failed lake writes (each retried).",
                    &s.errors,
                ),
            ],
        );
        let _ = writeln!(
            out,
            "# HELP mdhub_archive_buffered_rows Rows held in memory (the hot tier), not yet in the lake.\n# TYPE mdhub_archive_buffered_rows gauge\nmdhub_archive_buffered_rows {}",
            s.buffered.load(Ordering::Relaxed)
        );
    }
}

/// The PostgreSQL hot tier writer's counters.
#[derive(Debug)]
pub(crate) struct Postgres(pub(crate) Arc<mdhub_history::pg::PgStats>);

impl StatusSource for Postgres {
    fn section(&self) -> &str {
        "postgres"
    }
    fn status(&self) -> serde_json::Value {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "inserted": l(&self.0.inserted),
            "batches": l(&self.0.batches),
            "errors": l(&self.0.errors),
            "days_dropped": l(&self.0.days_dropped),
        })
    }
}

impl MetricsSource for Postgres {
    fn render(&self, out: &mut String) {
        let s = &self.0;
        counters(
            out,
            &[
                (
                    "mdhub_pg_inserted_total",
                    "Rows inserted into the PostgreSQL hot tier.",
                    &s.inserted,
                ),
                (
                    "mdhub_pg_batches_total",
                    "Batches written to PostgreSQL (one transaction each).",
                    &s.batches,
                ),
                (
                    "mdhub_pg_errors_total",
                    "Failed PostgreSQL writes (each retried).",
                    &s.errors,
                ),
                (
                    "mdhub_pg_days_dropped_total",
                    "Day partitions or chunks dropped by retention.",
                    &s.days_dropped,
                ),
            ],
        );
    }
}
