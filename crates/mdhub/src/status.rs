//! What a process adds to `/v1/status`, `/readyz` and `/metrics` besides
//! the gateway's own: its stages' health, the group consumers' counters and
//! lag, feed states, the ingest stage, the archiver, the PostgreSQL writer,
//! Kafka's producer and the process itself.

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
                    "mdhub_pg_days_dropped_total",
                    "Day partitions or chunks dropped by retention.",
                    &s.days_dropped,
                ),
            ],
        );
    }
}

/// Every stage's health (`stages` in `/v1/status`, `mdhub_stage_*` metrics,
/// failing stages in `/readyz`).
#[derive(Debug)]
pub(crate) struct Stages(pub(crate) mdhub_pipeline::Report);

impl StatusSource for Stages {
    fn section(&self) -> &str {
        "stages"
    }
    fn status(&self) -> serde_json::Value {
        let stages: Vec<_> = self
            .0
            .stages()
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name(),
                    "phase": s.phase().name(),
                    "state": s.state().name(),
                    "on_failure": match s.on_failure() {
                        mdhub_pipeline::OnFailure::Restart => "restart",
                        mdhub_pipeline::OnFailure::Exit => "exit",
                    },
                    "critical": s.critical(),
                    "failures": s.failures(),
                    "restarts": s.restarts(),
                    "last_error": s.last_error(),
                    "in_state_secs": s.in_state_for().as_secs(),
                })
            })
            .collect();
        serde_json::Value::Array(stages)
    }
}

impl MetricsSource for Stages {
    fn render(&self, out: &mut String) {
        let stages = self.0.stages();
        let mut family =
            |name: &str,
             kind: &str,
             help: &str,
             f: &dyn Fn(&mdhub_pipeline::StageHealth) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for s in &stages {
                    let _ = writeln!(out, "{name}{{stage=\"{}\"}} {}", s.name(), f(s));
                }
            };
        family(
            "mdhub_stage_up",
            "gauge",
            "1 while the stage is working (0: retrying, restarting or failed).",
            &|s| u64::from(s.state().healthy()),
        );
        family(
            "mdhub_stage_failures_total",
            "counter",
            "Failures of the stage (errors returned, failed writes retried in place).",
            &|s| s.failures(),
        );
        family(
            "mdhub_stage_restarts_total",
            "counter",
            "Times the supervisor started the stage again.",
            &|s| s.restarts(),
        );
    }
}

impl mdhub_gateway::HealthSource for Stages {
    fn problems(&self) -> Vec<mdhub_gateway::Problem> {
        self.0
            .unhealthy()
            .iter()
            .map(|s| mdhub_gateway::Problem {
                name: s.name().to_string(),
                state: s.state().name().to_string(),
                error: s.last_error(),
                critical: s.critical(),
            })
            .collect()
    }
}

/// A metric family of the consumers: name, help, value of one group.
type Row = (
    &'static str,
    &'static str,
    fn(&mdhub_pipeline::ConsumerStats) -> u64,
);

/// The group consumers (`consumers` in `/v1/status`, `mdhub_consumer_*`
/// metrics by group), with their lag per partition.
#[derive(Debug)]
pub(crate) struct Consumers(pub(crate) Vec<Arc<mdhub_pipeline::ConsumerStats>>);

impl StatusSource for Consumers {
    fn section(&self) -> &str {
        "consumers"
    }
    fn status(&self) -> serde_json::Value {
        let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let mut doc = serde_json::Map::new();
        for c in &self.0 {
            doc.insert(
                c.group().to_string(),
                serde_json::json!({
                    "records": l(&c.records),
                    "undecodable": l(&c.undecodable),
                    "damaged": l(&c.damaged),
                    "persists": l(&c.persists),
                    "persisted": l(&c.persisted),
                    "errors": l(&c.errors),
                    "commits": l(&c.commits),
                    "lag": c.total_lag(),
                }),
            );
        }
        serde_json::Value::Object(doc)
    }
}

impl MetricsSource for Consumers {
    fn render(&self, out: &mut String) {
        let rows: [Row; 7] = [
            (
                "mdhub_consumer_records_total",
                "Log records read by the group.",
                |c| c.records.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_undecodable_total",
                "Log records the group skipped because they did not decode.",
                |c| c.undecodable.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_damaged_total",
                "Log records the group skipped because the log's copy is damaged.",
                |c| c.damaged.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_persisted_total",
                "Records the group made durable in its target.",
                |c| c.persisted.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_errors_total",
                "Failed writes to the group's target (each retried, or restarting the stage).",
                |c| c.errors.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_commits_total",
                "Offset commits of the group.",
                |c| c.commits.load(Ordering::Relaxed),
            ),
            (
                "mdhub_consumer_lag_records",
                "Records the log holds past the group's committed offsets.",
                |c| c.total_lag(),
            ),
        ];
        for (name, help, f) in rows {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for c in &self.0 {
                let _ = writeln!(out, "{name}{{group=\"{}\"}} {}", c.group(), f(c));
            }
        }
        let name = "mdhub_consumer_partition_lag_records";
        let _ = writeln!(
            out,
            "# HELP {name} Records the log holds past the group's committed offset, per partition.\n# TYPE {name} gauge"
        );
        for c in &self.0 {
            for ((topic, partition), lag) in c.lag() {
                let _ = writeln!(
                    out,
                    "{name}{{group=\"{}\",topic=\"{}\",partition=\"{partition}\"}} {lag}",
                    c.group(),
                    topic.log_name()
                );
            }
        }
    }
}

/// `mdhub_build_info` and the `process_*` metrics Prometheus clients export
/// (read from /proc where there is one).
#[derive(Debug)]
pub(crate) struct ProcessInfo;

impl MetricsSource for ProcessInfo {
    fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP mdhub_build_info The running mdhub's version.\n# TYPE mdhub_build_info gauge\nmdhub_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name, which is in parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            return;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // sysconf would need `unsafe`, which this workspace denies: USER_HZ
        // is 100 and pages are 4 KiB on the x86-64 and arm64 Linux mdhub runs on.
        let (ticks, page) = (100.0, 4096.0);
        let cpu = (num(11) + num(12)) / ticks;
        let rss = num(21) * page;
        let started = num(19) / ticks;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0);
        let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time spent.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n\
             # HELP process_resident_memory_bytes Resident memory size.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}\n\
             # HELP process_start_time_seconds Start time of the process since the Unix epoch.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}\n\
             # HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds {fds}",
            boot + started
        );
    }
}

/// The embedded log's files: its epoch and what the background scrub found
/// (`log_files` in `/v1/status`, `mdhub_log_*` metrics, degraded `/readyz` while
/// damage is known).
#[derive(Debug)]
pub(crate) struct LogFiles(pub(crate) Arc<mdhub_log::Log>);

/// Damaged ranges listed in `/v1/status` (all are counted).
const DAMAGE_LISTED: usize = 20;

impl StatusSource for LogFiles {
    fn section(&self) -> &str {
        "log_files"
    }
    fn status(&self) -> serde_json::Value {
        let s = self.0.scrub_status();
        let damage: Vec<serde_json::Value> = s
            .damage
            .iter()
            .take(DAMAGE_LISTED)
            .map(|d| {
                serde_json::json!({
                    "topic": d.topic,
                    "partition": d.partition,
                    "segment": d.segment.display().to_string(),
                    "position": d.position,
                    "offset": d.offset,
                    "resume": d.resume,
                    "reason": d.reason,
                })
            })
            .collect();
        let disk = self.0.disk_space();
        serde_json::json!({
            "epoch": self.0.epoch(),
            "previous_epoch": self.0.previous_epoch(),
            "disk": {
                "free_bytes": disk.free_bytes,
                "min_free_bytes": disk.min_free_bytes,
                "low": disk.low,
            },
            "scrub": {
                "passes": s.passes,
                "segments": s.segments,
                "bytes": s.bytes,
                "damaged_ranges": s.damage.len(),
                "damage": damage,
            },
        })
    }
}

impl MetricsSource for LogFiles {
    fn render(&self, out: &mut String) {
        let s = self.0.scrub_status();
        let disk = self.0.disk_space();
        let rows = [
            (
                "mdhub_log_free_bytes",
                "gauge",
                "Free bytes on the log's filesystem (appends stop below log.min_free_mb).",
                disk.free_bytes,
            ),
            (
                "mdhub_log_min_free_bytes",
                "gauge",
                "The free-space watermark.",
                disk.min_free_bytes,
            ),
            (
                "mdhub_log_scrub_passes_total",
                "counter",
                "Scrub passes over every closed segment.",
                s.passes,
            ),
            (
                "mdhub_log_scrub_bytes_total",
                "counter",
                "Bytes of closed segments the scrub checked.",
                s.bytes,
            ),
            (
                "mdhub_log_damaged_ranges",
                "gauge",
                "Damaged ranges the scrub knows of in closed segments (readers skip them and say so).",
                s.damage.len() as u64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
    }
}

impl mdhub_gateway::HealthSource for LogFiles {
    fn problems(&self) -> Vec<mdhub_gateway::Problem> {
        let n = self.0.scrub_status().damage.len();
        if n == 0 {
            return Vec::new();
        }
        vec![mdhub_gateway::Problem {
            name: "log".into(),
            state: "damaged".into(),
            error: Some(format!(
                "{n} damaged ranges in closed segments: readers skip them with a data_lost reset (mdhub log verify lists them)"
            )),
            critical: false,
        }]
    }
}
