//! `mdhub archive --backfill CAPTURE…`: raw captures (`--record-raw`) into
//! the lake, with a progress bar.
//!
//! Each frame goes through its venue's decoder with its recorded receipt
//! time, exactly as `mdhub replay` plays it, but the events go straight to
//! the lake instead of the log. Rows that never were in the log still need
//! positions for their file names and for exactly-once: a capture file gets
//! a partition number of its own, `2^31 + (hash of its file name mod 2^31)`
//! (above any log partition), and its events are numbered in file order per
//! table. So a backfill is idempotent: importing the same capture again
//! finds its rows by their watermarks and writes nothing.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use mdhub_feeds::capture::{CaptureReader, capture_files};
use mdhub_history::archive::{ArchiveConfig, ArchiveStats, Archiver, HotTier};
use mdhub_types::{Event, Position, Positioned, Topic};

use crate::config::Config;

/// The lake partition of a capture file's rows (see the module docs).
pub(crate) fn backfill_partition(file_name: &str) -> u32 {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file_name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    0x8000_0000 | (h as u32 & 0x7fff_ffff)
}

/// Import `paths` (capture files or directories of them) into the lake.
pub(crate) fn main(cfg: &Config, paths: &[PathBuf]) -> ExitCode {
    let mut files = Vec::new();
    for p in paths {
        match capture_files(p) {
            Ok(f) => files.extend(f),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if files.is_empty() {
        eprintln!("error: no *.capture.jsonl files in {paths:?}");
        return ExitCode::from(2);
    }
    super::block_on(true, async move {
        match run(cfg, &files).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(cfg: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let lake = crate::history::open_lake(cfg)?;
    let stats = Arc::new(ArchiveStats::default());
    let mut archiver = Archiver::new(
        lake.clone(),
        ArchiveConfig {
            flush_interval: Duration::from_secs(u64::MAX / 4),
            max_buffered_rows: cfg.history.max_buffered_rows,
            ..ArchiveConfig::default()
        },
        HotTier::new(),
        stats.clone(),
    );
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    // Drawn on stderr when it is a terminal, hidden otherwise.
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let (mut frames, mut dropped) = (0u64, 0u64);
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        bar.set_message(name.clone());
        let partition = backfill_partition(&name);
        let mut reader = CaptureReader::open(file)?;
        let mut next = [0u64; 2]; // trades, quotes
        let mut events: Vec<Event> = Vec::new();
        let mut rows: Vec<Positioned> = Vec::new();
        let mut seen = 0;
        loop {
            events.clear();
            if reader.next_frame(&mut events)?.is_none() {
                break;
            }
            for e in events.drain(..) {
                let (topic, i) = match e.topic() {
                    Topic::Trades => (Topic::Trades, 0),
                    Topic::Quotes => (Topic::Quotes, 1),
                    Topic::Status => continue,
                };
                rows.push(Positioned {
                    position: Position {
                        topic,
                        partition,
                        offset: next[i],
                    },
                    event: e,
                });
                next[i] += 1;
            }
            if rows.len() >= 10_000 {
                archiver.push(std::mem::take(&mut rows))?;
                if archiver.due() {
                    archiver.flush().await?;
                }
                bar.inc(reader.bytes - seen);
                seen = reader.bytes;
            }
        }
        archiver.push(rows)?;
        bar.inc(reader.bytes - seen);
        frames += reader.lines;
        dropped += reader.dropped;
    }
    archiver.flush().await?;
    bar.finish_and_clear();
    let s = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "backfilled {} rows into {} files in {} ({} already there) from {} frames of {} capture file(s); {} frames dropped",
        s(&stats.rows_written),
        s(&stats.files_written),
        lake.url(),
        s(&stats.rows_already_archived),
        frames,
        files.len(),
        dropped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backfill_partitions_are_stable_and_above_log_partitions() {
        let p = backfill_partition("binance-2024-05-01-1714521600000000000.capture.jsonl");
        assert!(p >= 1 << 31);
        assert_eq!(
            p,
            backfill_partition("binance-2024-05-01-1714521600000000000.capture.jsonl")
        );
        assert_ne!(p, backfill_partition("kraken-2024-05-01-1.capture.jsonl"));
    }
}
