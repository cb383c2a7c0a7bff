//! The PostgreSQL hot tier (`DATABASE_URL`): recent quotes and trades in
//! SQL tables, for tools that speak PostgreSQL.
//!
//! [`PgWriter`] is a group consumer on the one driver
//! ([`mdhub_pipeline::drive`]): it reads the price topics as consumer group [`GROUP`] and writes
//! each batch with one `COPY` into a staging table and one `INSERT … ON
//! CONFLICT DO NOTHING`, in one transaction, then commits the group's
//! offsets. Every row's primary key holds its log position, so a replay after
//! a crash inserts nothing twice: exactly once, like the lake.
//!
//! Tables `mdhub_trades` and `mdhub_quotes`: a TimescaleDB hypertable on
//! `ts` (one-day chunks) when the extension is installed in the database, a
//! plain table range-partitioned by day on `ts` otherwise (partitions made as
//! days arrive). `ts` is `ts_exchange` at PostgreSQL's microsecond
//! precision; `ts_exchange_ns` and `ts_received_ns` keep the nanoseconds,
//! prices and sizes are exact `numeric`. Rows are keyed by their log
//! position, which holds whatever their venue; the only state kept is which
//! day partitions exist; queries select an instrument by `symbol` and
//! `venue` (indexes on `(symbol, ts)` and `(symbol, venue, ts)`). Retention
//! drops whole days (chunks or partitions) older than `retention_days`.
//!
//! TLS: `sslmode=require` in the URL (what Heroku Postgres asks) encrypts
//! without verifying the server's certificate, as libpq does for `require`;
//! `sslmode=disable` or a server without TLS under the default `prefer`
//! connect in plain text.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::SinkExt;
use mdhub_bus::Bus;
use mdhub_pipeline::{
    ConsumerStats, DriveError, DriverConfig, GroupSink, SinkError, StageCtx, StageHealth, drive,
};
use mdhub_types::{Event, Positioned, Timestamp};
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::TableKind;
use crate::path::day_of;

/// The consumer group's name (before the Kafka prefix).
pub const GROUP: &str = "mdhub-pg";

const DAY: i64 = 86_400_000_000_000;

/// Why the PostgreSQL hot tier failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// Connecting, or a statement, failed.
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The URL is not a PostgreSQL URL.
    #[error("DATABASE_URL: {0}")]
    BadUrl(String),
}

/// Counters of the PostgreSQL writer.
#[derive(Debug, Default)]
pub struct PgStats {
    /// Rows inserted (replayed rows the tables held already are not counted).
    pub inserted: AtomicU64,
    /// Batches written (one transaction each).
    pub batches: AtomicU64,
    /// Days dropped by retention.
    pub days_dropped: AtomicU64,
}

/// A connection to the hot-tier database, with its tables ready.
#[derive(Debug)]
pub struct PgSink {
    client: Client,
    timescale: bool,
    partitions: HashSet<(TableKind, i64)>,
}

fn table_name(t: TableKind) -> &'static str {
    match t {
        TableKind::Trades => "mdhub_trades",
        TableKind::Quotes => "mdhub_quotes",
    }
}

fn columns(t: TableKind) -> &'static str {
    match t {
        TableKind::Trades => {
            "ts timestamptz NOT NULL, ts_exchange_ns bigint NOT NULL, ts_received_ns bigint NOT NULL, \
             venue text NOT NULL, symbol text NOT NULL, price numeric NOT NULL, size numeric NOT NULL, \
             side text NOT NULL, trade_id text, log_partition bigint NOT NULL, log_offset bigint NOT NULL, \
             PRIMARY KEY (log_partition, log_offset, ts)"
        }
        TableKind::Quotes => {
            "ts timestamptz NOT NULL, ts_exchange_ns bigint NOT NULL, ts_received_ns bigint NOT NULL, \
             venue text NOT NULL, symbol text NOT NULL, bid_price numeric NOT NULL, bid_size numeric NOT NULL, \
             ask_price numeric NOT NULL, ask_size numeric NOT NULL, log_partition bigint NOT NULL, \
             log_offset bigint NOT NULL, PRIMARY KEY (log_partition, log_offset, ts)"
        }
    }
}

impl PgSink {
    /// Connect to `url` and create the tables when missing.
    pub async fn connect(url: &str) -> Result<PgSink, PgError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::BadUrl(e.to_string()))?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(no_verify_tls());
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        let timescale = client
            .query_opt(
                "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'",
                &[],
            )
            .await?
            .is_some();
        for t in TableKind::ALL {
            let name = table_name(t);
            if timescale {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {name} ({}); \
                         SELECT create_hypertable('{name}', 'ts', chunk_time_interval => INTERVAL '1 day', if_not_exists => TRUE);",
                        columns(t)
                    ))
                    .await?;
            } else {
                client
                    .batch_execute(&format!(
                        "CREATE TABLE IF NOT EXISTS {name} ({}) PARTITION BY RANGE (ts);",
                        columns(t)
                    ))
                    .await?;
            }
            // An instrument is a venue and a symbol: one venue's rows of a
            // symbol are a range of the second index.
            client
                .batch_execute(&format!(
                    "CREATE INDEX IF NOT EXISTS {name}_symbol_ts ON {name} (symbol, ts); \
                     CREATE INDEX IF NOT EXISTS {name}_symbol_venue_ts ON {name} (symbol, venue, ts);"
                ))
                .await?;
        }
        Ok(PgSink {
            client,
            timescale,
            partitions: HashSet::new(),
        })
    }

    /// Whether the tables are TimescaleDB hypertables.
    pub fn is_timescale(&self) -> bool {
        self.timescale
    }

    /// The client (for queries).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Insert the rows of `table` among `rows` (others are skipped) in one
    /// transaction; returns how many were new.
    pub async fn write(&mut self, table: TableKind, rows: &[Positioned]) -> Result<u64, PgError> {
        let rows: Vec<&Positioned> = rows
            .iter()
            .filter(|r| TableKind::of(&r.event) == Some(table))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        if !self.timescale {
            let days: HashSet<i64> = rows.iter().map(|r| day_of(r.event.ts_exchange())).collect();
            for day in days {
                self.ensure_partition(table, day).await?;
            }
        }
        let name = table_name(table);
        let mut text = String::with_capacity(rows.len() * 160);
        for r in &rows {
            copy_line(&mut text, r);
        }
        let tx = self.client.transaction().await?;
        tx.batch_execute(&format!(
            "CREATE TEMP TABLE IF NOT EXISTS stage_{name} (LIKE {name}) ON COMMIT DELETE ROWS;"
        ))
        .await?;
        let sink = tx
            .copy_in::<_, Bytes>(&format!("COPY stage_{name} FROM STDIN"))
            .await?;
        futures_util::pin_mut!(sink);
        sink.send(Bytes::from(text)).await?;
        sink.finish().await?;
        let inserted = tx
            .execute(
                &format!("INSERT INTO {name} SELECT * FROM stage_{name} ON CONFLICT DO NOTHING"),
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn ensure_partition(&mut self, table: TableKind, day: i64) -> Result<(), PgError> {
        if self.partitions.contains(&(table, day)) {
            return Ok(());
        }
        let name = table_name(table);
        let (from, to) = (
            Timestamp::from_nanos(day * DAY).date_string(),
            Timestamp::from_nanos((day + 1) * DAY).date_string(),
        );
        let part = format!("{name}_{}", from.replace('-', ""));
        self.client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {part} PARTITION OF {name} \
                 FOR VALUES FROM ('{from} 00:00:00+00') TO ('{to} 00:00:00+00');"
            ))
            .await?;
        self.partitions.insert((table, day));
        Ok(())
    }

    /// Drop the days that ended more than `days` days before `now`; returns
    /// how many day partitions (or hypertable chunks) went.
    pub async fn retention(&mut self, days: u32, now: Timestamp) -> Result<u64, PgError> {
        let keep_from = (day_of(now) - i64::from(days)) * DAY;
        let cutoff = Timestamp::from_nanos(keep_from).to_string();
        let mut dropped = 0;
        for t in TableKind::ALL {
            let name = table_name(t);
            if self.timescale {
                let rows = self
                    .client
                    .query(
                        &format!(
                            "SELECT drop_chunks('{name}', older_than => '{cutoff}'::timestamptz)"
                        ),
                        &[],
                    )
                    .await?;
                dropped += rows.len() as u64;
                continue;
            }
            let parts = self
                .client
                .query(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                     JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = $1",
                    &[&name],
                )
                .await?;
            for row in parts {
                let part: String = row.get(0);
                let Some(date) = part.strip_prefix(&format!("{name}_")) else {
                    continue;
                };
                let Some(day) = parse_compact_date(date) else {
                    continue;
                };
                if (day + 1) * DAY <= keep_from {
                    self.client
                        .batch_execute(&format!("DROP TABLE IF EXISTS {part};"))
                        .await?;
                    self.partitions.remove(&(t, day));
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }
}

/// `YYYYMMDD` → days since the epoch.
fn parse_compact_date(s: &str) -> Option<i64> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    crate::path::day_of_date(&format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..]))
}

/// One line of `COPY … FROM STDIN` (text format) for a row.
fn copy_line(out: &mut String, r: &Positioned) {
    let e = &r.event;
    let (ts_e, ts_r) = (e.ts_exchange(), e.ts_received());
    // `ts`: RFC 3339 with nanoseconds; PostgreSQL rounds to microseconds.
    let _ = write!(
        out,
        "{ts_e}\t{}\t{}\t{}\t{}\t",
        ts_e.as_nanos(),
        ts_r.as_nanos(),
        escape(e.venue().as_str()),
        escape(e.symbol().as_str())
    );
    match e {
        Event::Trade(t) => {
            let _ = write!(out, "{}\t{}\t{}\t", t.price, t.size, t.side.as_str());
            match &t.trade_id {
                Some(id) => out.push_str(&escape(id)),
                None => out.push_str("\\N"),
            }
            out.push('\t');
        }
        Event::Quote(q) => {
            let _ = write!(
                out,
                "{}\t{}\t{}\t{}\t",
                q.bid_price, q.bid_size, q.ask_price, q.ask_size
            );
        }
        Event::Status(_) => {}
    }
    let _ = writeln!(out, "{}\t{}", r.position.partition, r.position.offset);
}

/// Text-format COPY escaping of one field.
fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\t', '\n', '\r']) {
        return s.into();
    }
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
        .into()
}

/// TLS that encrypts without verifying the server (libpq's `sslmode=require`).
fn no_verify_tls() -> rustls::ClientConfig {
    #[derive(Debug)]
    struct NoVerify(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for NoVerify {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth()
}

/// The hot-tier writer as a group consumer on the one driver
/// ([`mdhub_pipeline::drive`]): each read batch is written to both tables in
/// one persist; while PostgreSQL is down the same batch is retried with the
/// shared backoff (the log is the buffer) and the connection is made again.
/// Every hour, and at start, days older than `retention_days` are dropped.
#[derive(Debug)]
pub struct PgWriter {
    url: String,
    retention_days: u32,
    stats: Arc<PgStats>,
    sink: Option<PgSink>,
    rows: Vec<Positioned>,
    next_retention: tokio::time::Instant,
}

impl PgWriter {
    /// A writer to `url` (connected on the first persist).
    pub fn new(url: String, retention_days: u32, stats: Arc<PgStats>) -> PgWriter {
        PgWriter {
            url,
            retention_days,
            stats,
            sink: None,
            rows: Vec::new(),
            next_retention: tokio::time::Instant::now(),
        }
    }

    async fn write(&mut self) -> Result<u64, PgError> {
        if self.sink.is_none() {
            self.sink = Some(PgSink::connect(&self.url).await?);
        }
        let s = self.sink.as_mut().expect("connected");
        if tokio::time::Instant::now() >= self.next_retention && self.retention_days > 0 {
            let n = s.retention(self.retention_days, Timestamp::now()).await?;
            self.stats.days_dropped.fetch_add(n, Ordering::Relaxed);
            self.next_retention = tokio::time::Instant::now() + Duration::from_secs(3600);
        }
        let mut n = 0;
        for t in TableKind::ALL {
            n += s.write(t, &self.rows).await?;
        }
        Ok(n)
    }
}

#[async_trait::async_trait]
impl GroupSink for PgWriter {
    fn group(&self) -> &'static str {
        GROUP
    }

    fn push(&mut self, records: Vec<Positioned>) -> Result<(), SinkError> {
        self.rows.extend(records);
        Ok(())
    }

    fn due(&self) -> bool {
        // Every batch, also an empty one once an hour is up: retention runs.
        !self.rows.is_empty()
            || (self.retention_days > 0 && tokio::time::Instant::now() >= self.next_retention)
    }

    async fn persist(&mut self) -> Result<(), SinkError> {
        match self.write().await {
            Ok(n) => {
                self.stats.inserted.fetch_add(n, Ordering::Relaxed);
                self.stats
                    .batches
                    .fetch_add(u64::from(!self.rows.is_empty()), Ordering::Relaxed);
                self.rows.clear();
                Ok(())
            }
            Err(PgError::BadUrl(e)) => Err(SinkError::fatal(PgError::BadUrl(e))),
            Err(e) => {
                self.sink = None; // connect again on the next try
                Err(SinkError::retry(e))
            }
        }
    }

    fn pending(&self) -> usize {
        self.rows.len()
    }
}

/// Run the hot-tier writer on the driver until `stop`, outside a supervisor
/// (tests; `mdhub run` and `mdhub archive` run it as a stage).
pub async fn run(
    bus: Arc<dyn Bus>,
    url: String,
    retention_days: u32,
    stats: Arc<PgStats>,
    stop: CancellationToken,
) -> Result<(), DriveError> {
    let ctx = StageCtx {
        stop,
        health: StageHealth::detached(GROUP),
    };
    let writer = PgWriter::new(url, retention_days, stats);
    drive(
        bus,
        writer,
        &DriverConfig::default(),
        &ConsumerStats::new(GROUP),
        &ctx,
    )
    .await
}
