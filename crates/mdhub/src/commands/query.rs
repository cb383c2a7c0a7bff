//! `mdhub query`: SQL and bars over the lake from the shell.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use mdhub_history::query::{History, bars_batch, bars_sql};
use mdhub_types::{Symbol, Timestamp, Venue};

use crate::config::Config;

/// Flags of `mdhub query`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  mdhub query \"SELECT symbol, count(*) AS n FROM trades GROUP BY symbol ORDER BY n DESC\"
  mdhub query \"SELECT * FROM quotes WHERE symbol = 'AAPL' ORDER BY ts_exchange DESC LIMIT 5\"
  mdhub query --bars AAPL --interval 5m --from 2024-05-01T13:30:00Z --to 2024-05-01T20:00:00Z
  mdhub query --bars BTC-USD --venue coinbase --interval 1h
  mdhub query --format parquet --output aapl.parquet \"SELECT * FROM trades WHERE symbol = 'AAPL'\"

Tables: trades (ts_exchange, ts_received, venue, symbol, price, size, side, trade_id,
log_partition, log_offset) and quotes (… bid_price, bid_size, ask_price, ask_size …);
prices and sizes are exact DECIMAL(38, 18). Functions: DataFusion's, plus the exact
vwap(price, size). The lake holds what the archiver has flushed (history.flush_interval_secs);
rows it still holds in memory are in the running hub's /v1/history.")]
pub struct QueryArgs {
    /// SQL over the tables `trades` and `quotes` (DataFusion's dialect: `date_bin`,
    /// window functions, …).
    #[arg(value_name = "SQL", required_unless_present = "bars")]
    pub sql: Option<String>,
    /// OHLCV bars with VWAP and trade count of one symbol's trades, instead of SQL:
    /// one series per venue (column `venue`).
    #[arg(long, value_name = "SYMBOL", conflicts_with = "sql")]
    pub bars: Option<String>,
    /// Only this venue's bars (a venue id: coinbase, sim-nasdaq, …).
    #[arg(long, value_name = "VENUE", requires = "bars")]
    pub venue: Option<String>,
    /// Bar width: 250ms, 5s, 1m, 15m, 1h, 1d.
    #[arg(long, default_value = "1m", requires = "bars")]
    pub interval: String,
    /// Bars from this time (RFC 3339 or Unix nanoseconds; default: 24 h before --to).
    #[arg(long, requires = "bars")]
    pub from: Option<String>,
    /// Bars up to this time, exclusive (default: now).
    #[arg(long, requires = "bars")]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "parquet"])]
    pub format: String,
    /// Write to this file instead of stdout (required for parquet).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The lake to query (overrides `history.lake_url` / `$MDHUB_LAKE_URL`).
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    pub lake: Option<String>,
    /// Ask a running hub instead (http[s]://HOST:PORT): its answer includes
    /// the rows its archiver holds in memory, not yet in the lake. SQL only.
    #[arg(long, value_name = "URL", conflicts_with = "bars")]
    pub url: Option<String>,
}

/// Run the query and print (or write) its result.
pub fn main(mut cfg: Config, args: QueryArgs) -> ExitCode {
    if let Some(l) = args.lake.clone() {
        cfg.history.lake_url = Some(l);
    }
    if args.format == "parquet" && args.output.is_none() {
        eprintln!("error: --format parquet needs --output FILE");
        return ExitCode::from(2);
    }
    let job = match job_of(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    super::block_on(false, async move {
        match run(&cfg, job, &args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                if e.downcast_ref::<mdhub_history::query::QueryError>()
                    .is_some_and(|q| q.is_invalid())
                {
                    ExitCode::from(2)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}

/// What to run: SQL, or bars of a symbol.
enum Job {
    Sql(String),
    Bars(
        Symbol,
        Option<Venue>,
        std::time::Duration,
        Timestamp,
        Timestamp,
    ),
}

fn job_of(args: &QueryArgs) -> anyhow::Result<Job> {
    let Some(symbol) = &args.bars else {
        return Ok(Job::Sql(args.sql.clone().unwrap_or_default()));
    };
    let symbol = Symbol::new(symbol).with_context(|| format!("--bars {symbol:?}"))?;
    let venue = args
        .venue
        .as_deref()
        .map(|v| Venue::new(v).with_context(|| format!("--venue {v:?}")))
        .transpose()?;
    let interval = mdhub_gateway::history::parse_interval(&args.interval).with_context(|| {
        format!(
            "--interval {:?}: expected 250ms, 5s, 1m, 1h, 1d",
            args.interval
        )
    })?;
    let time = |flag: &str, v: &Option<String>| -> anyhow::Result<Option<Timestamp>> {
        v.as_deref()
            .map(|t| {
                mdhub_gateway::history::parse_time(t).with_context(|| {
                    format!("--{flag} {t:?}: expected RFC 3339 (2024-05-01T13:30:00Z) or Unix nanoseconds")
                })
            })
            .transpose()
    };
    let to = time("to", &args.to)?.unwrap_or_else(Timestamp::now);
    let from = time("from", &args.from)?.unwrap_or(to.add_nanos(-86_400_000_000_000));
    anyhow::ensure!(from < to, "--from must be before --to");
    bars_sql(&symbol, venue.as_ref(), interval, from, to)?; // checks the interval
    Ok(Job::Bars(symbol, venue, interval, from, to))
}

async fn run(cfg: &Config, job: Job, args: &QueryArgs) -> anyhow::Result<()> {
    if let (Some(url), Job::Sql(sql)) = (&args.url, &job) {
        return remote(url, sql, args).await;
    }
    let lake = crate::history::open_lake(cfg)?;
    // Local queries keep the memory bound but may run long and return
    // everything: the lake is the user's own.
    let limits = mdhub_history::query::QueryLimits {
        timeout: std::time::Duration::from_secs(24 * 3600),
        result_bytes: usize::MAX,
        ..crate::history::query_limits(cfg)
    };
    let history = History::new(lake, None).with_limits(limits);
    let (schema, batches) = match job {
        Job::Sql(sql) => history.sql(&sql).await?,
        // Whole minutes come from the files' minute bars, without reading ticks.
        Job::Bars(symbol, venue, interval, from, to) => {
            let bars = history
                .bars(&symbol, venue.as_ref(), interval, from, to)
                .await?;
            let batch = bars_batch(&bars)?;
            (batch.schema(), vec![batch])
        }
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    write(&mut out, &args.format, schema, &batches)?;
    out.flush()?;
    Ok(())
}

/// Write `batches` in `format` (`table`, `csv`, `json` lines, `parquet`).
pub(crate) fn write(
    out: &mut dyn Write,
    format: &str,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> anyhow::Result<()> {
    use datafusion::arrow;
    match format {
        "table" => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(batches)?
            )?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        "csv" => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        "json" => {
            // arrow's JSON writer prints decimals as floats: exact text instead.
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(&mdhub_history::query::decimals_as_text(b)?)?;
            }
            w.finish()?;
        }
        "parquet" => {
            let mut buf = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, schema, None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
            out.write_all(&buf)?;
        }
        other => anyhow::bail!("unknown format {other:?}"),
    }
    Ok(())
}

/// `--url`: the hub's `/v1/history/sql` answer, written like a local one.
async fn remote(url: &str, sql: &str, args: &QueryArgs) -> anyhow::Result<()> {
    let endpoint = format!("{}/v1/history/sql", url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .get(&endpoint)
        .query(&[("q", sql)])
        .send()
        .await
        .with_context(|| format!("asking {endpoint}"))?;
    let status = resp.status();
    let doc: serde_json::Value = resp
        .json()
        .await
        .with_context(|| format!("reading {endpoint}'s answer"))?;
    if !status.is_success() {
        let message = doc["error"]["message"]
            .as_str()
            .unwrap_or("no reason given");
        if status.is_client_error() {
            return Err(mdhub_history::query::QueryError::Invalid(message.to_owned()).into());
        }
        anyhow::bail!("{endpoint}: {status}: {message}");
    }
    let rows = doc["rows"].as_array().cloned().unwrap_or_default();
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if args.format == "json" {
        for r in &rows {
            writeln!(out, "{r}")?;
        }
    } else {
        use datafusion::arrow::json::reader::{ReaderBuilder, infer_json_schema_from_iterator};
        let inferred = infer_json_schema_from_iterator(rows.iter().map(Ok))?;
        // JSON objects lose the column order: take it from `columns`.
        let mut fields = Vec::new();
        for c in doc["columns"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default();
            let field = inferred.field_with_name(name).cloned().unwrap_or_else(|_| {
                datafusion::arrow::datatypes::Field::new(
                    name,
                    datafusion::arrow::datatypes::DataType::Utf8,
                    true,
                )
            });
            fields.push(field);
        }
        let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        let mut decoder = ReaderBuilder::new(schema.clone()).build_decoder()?;
        decoder.serialize(&rows)?;
        let batches: Vec<RecordBatch> = decoder.flush()?.into_iter().collect();
        write(&mut out, &args.format, schema, &batches)?;
    }
    if doc["truncated"] == true {
        eprintln!("(the hub cut the answer at {} rows)", rows.len());
    }
    out.flush()?;
    Ok(())
}
