//! `mdhub normalize --venue ID`: raw venue frames in, one per line on stdin;
//! normalized events out, one JSON object per line on stdout — the same JSON
//! clients receive. A line that yields no event is reported on stderr with
//! its line number and the reason; the run goes on. Exit status 0 unless
//! stdin cannot be read (1) or the venue is unknown (2).

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::Args;
use mdhub_feeds::venues::{self, Frame};
use mdhub_types::{Timestamp, json};

/// Flags of `mdhub normalize`.
#[derive(Debug, Args)]
pub struct NormalizeArgs {
    /// Venue whose wire format the lines are in (binance).
    #[arg(long)]
    pub venue: String,
    /// Receipt time to stamp on every event (RFC 3339), for reproducible
    /// output; default: when each line is read.
    #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
    pub received_at: Option<Timestamp>,
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

/// Entry point.
pub fn main(args: NormalizeArgs) -> ExitCode {
    let Some(mut decoder) = venues::decoder(&args.venue) else {
        eprintln!(
            "error: unknown venue {:?}; known: {}",
            args.venue,
            venues::registry::ids().collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(2);
    };
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut events = Vec::new();
    let (mut read, mut written, mut skipped) = (0u64, 0u64, 0u64);
    for (n, line) in stdin.split(b'\n').enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: reading stdin: {e}");
                return ExitCode::FAILURE;
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read += 1;
        let ts = args.received_at.unwrap_or_else(Timestamp::now);
        events.clear();
        let why = match decoder.decode(line, ts, &mut events) {
            Ok(Frame::Data) => None,
            Ok(Frame::Ack(id)) => Some(format!("subscription acknowledged (id {id}), no data")),
            Ok(Frame::Refused(m)) if !events.is_empty() => {
                eprintln!("line {}: the venue refused a request: {m}", n + 1);
                None
            }
            Ok(Frame::Refused(m)) => Some(format!("the venue refused a request: {m}")),
            Ok(Frame::Ignored(what)) => Some(format!("{what}, not used")),
            Ok(Frame::Gap(what)) => {
                eprintln!("line {}: gap: {what}", n + 1);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        for e in &events {
            let ok = stdout
                .write_all(&json::to_vec(e))
                .and_then(|()| stdout.write_all(b"\n"));
            if ok.is_err() {
                // stdout closed (e.g. piped into `head`): nothing more to do.
                return ExitCode::SUCCESS;
            }
            written += 1;
        }
        if let Some(why) = why.filter(|_| events.is_empty()) {
            skipped += 1;
            eprintln!("line {}: skipped: {why}", n + 1);
        }
    }
    let _ = stdout.flush();
    eprintln!("{read} frames read, {written} events written, {skipped} frames skipped");
    ExitCode::SUCCESS
}
