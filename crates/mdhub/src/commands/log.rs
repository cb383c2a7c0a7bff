//! `mdhub log verify`: check the embedded log's files record by record;
//! `mdhub log repair`: quarantine damage and apply the recovery policy on a
//! stopped log.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::config::Config;

/// Flags of `mdhub log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// What to do with the log.
    #[command(subcommand)]
    pub command: LogCommand,
}

/// `mdhub log` subcommands.
#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Check every record of every segment (length, CRC-32C, offsets); list damage by topic, partition, segment, byte and offset. Read-only: safe beside a running hub. Exit status 0 clean, 1 damage found, 2 cannot read.
    Verify(VerifyArgs),
    /// On a stopped log: copy every damaged range to DIR/quarantine/, rebuild every index, cut a damaged newest segment (under a new epoch: clients resuming from an old position get epoch_changed), and report. Damage in older segments stays, skipped by readers with a data_lost reset. Refuses while a process has the log open.
    Repair(VerifyArgs),
}

/// Flags of `mdhub log verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The log directory. Default: log.dir (`<data_dir>/log`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The data directory (the log is DIR/log), as `mdhub run --data-dir`.
    #[arg(long, value_name = "DIR", conflicts_with = "dir")]
    pub data_dir: Option<PathBuf>,
}

/// `mdhub log …`.
pub fn main(cfg: Config, args: LogArgs) -> ExitCode {
    match args.command {
        LogCommand::Verify(v) => verify(cfg, v),
        LogCommand::Repair(v) => repair(cfg, v),
    }
}

fn repair(cfg: Config, args: VerifyArgs) -> ExitCode {
    let dir = args.log_dir(&cfg);
    let config = mdhub_log::LogConfig {
        dir: dir.clone(),
        ..cfg.log
    };
    let r = match mdhub_log::repair(config) {
        Ok(r) => r,
        Err(e @ mdhub_log::Error::Locked { .. }) => {
            eprintln!("error: {e} (stop mdhub first: repair works on a stopped log)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: cannot repair {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    println!("{}: {} damaged ranges found", dir.display(), r.before.len());
    for q in &r.quarantined {
        println!("quarantined: {}", q.display());
    }
    println!("index files rebuilt: {}", r.indexes_rebuilt);
    match &r.previous_epoch {
        Some(old) => println!(
            "epoch changed: {old} -> {} (records clients may have seen were cut; their positions now get epoch_changed)",
            r.epoch
        ),
        None => println!("epoch kept: {}", r.epoch),
    }
    for d in &r.after {
        println!(
            "still damaged (skipped by readers): {}/{} {} byte {}: offsets {}..{}",
            d.topic,
            d.partition,
            d.segment.display(),
            d.position,
            d.offset,
            d.resume
                .map_or("end of segment".to_owned(), |o| o.to_string())
        );
    }
    ExitCode::SUCCESS
}

impl VerifyArgs {
    /// The log directory the flags name (default: the configuration's).
    fn log_dir(&self, cfg: &Config) -> PathBuf {
        self.dir
            .clone()
            .or_else(|| self.data_dir.as_ref().map(|d| d.join("log")))
            .unwrap_or_else(|| cfg.log.dir.clone())
    }
}

fn verify(cfg: Config, args: VerifyArgs) -> ExitCode {
    let dir = args.log_dir(&cfg);
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut shown = Instant::now();
    let progress = |p: mdhub_log::VerifyProgress| {
        if tty && shown.elapsed() >= Duration::from_millis(250) {
            shown = Instant::now();
            let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
            eprint!(
                "\rverifying {}: {pct:>3}% of {} MB",
                dir.display(),
                p.total >> 20
            );
            let _ = std::io::stderr().flush();
        }
    };
    let report = match mdhub_log::verify(&dir, progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot verify {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    if tty {
        eprint!("\r\x1b[K");
    }
    for d in &report.damage {
        let lost = match d.resume {
            Some(r) => format!(
                "offsets {}..{} unreadable, reading resumes at {r}",
                d.offset, r
            ),
            None => format!(
                "offsets from {} to the end of the segment unreadable",
                d.offset
            ),
        };
        println!(
            "damaged: {}/{} {} byte {}: {}; {lost}",
            d.topic,
            d.partition,
            d.segment.display(),
            d.position,
            d.reason
        );
    }
    println!(
        "{}: {} partitions, {} segments, {} MB, {} records checked in {:.1} s: {}",
        dir.display(),
        report.partitions,
        report.segments,
        report.bytes >> 20,
        report.records,
        started.elapsed().as_secs_f64(),
        match report.damage.len() {
            0 => "no damage".to_owned(),
            n => format!("{n} damaged ranges (readers skip them and say so: a `data_lost` reset)"),
        }
    );
    if report.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
