//! History in the binary: the archiver's set-up from the configuration and
//! the REST answers of `/v1/history/*` over the query engine.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use mdhub_gateway::history::csv;
use mdhub_gateway::{
    Cursor, HistoryFailure, HistoryKind, HistoryRequest, HistorySource, RowFormat,
};
use mdhub_history::archive::{ArchiveConfig, ArchiveStats, Archiver, HotTier};
use mdhub_history::query::{History, QueryError, RowKey};
use mdhub_history::{Lake, TableKind};
use serde_json::json;

use crate::config::Config;

/// The bounds `[history]` puts on each query.
pub(crate) fn query_limits(cfg: &Config) -> mdhub_history::query::QueryLimits {
    mdhub_history::query::QueryLimits {
        memory_bytes: cfg.history.query_memory_mb.max(1).saturating_mul(1 << 20),
        timeout: Duration::from_secs(cfg.history.query_timeout_secs.max(1)),
        result_bytes: cfg.history.query_result_mb.max(1).saturating_mul(1 << 20),
    }
}

/// Open the lake the configuration names.
pub(crate) fn open_lake(cfg: &Config) -> anyhow::Result<Lake> {
    let url = cfg.lake_url();
    Lake::open(&url).map_err(|e| anyhow::anyhow!("history.lake_url {url:?}: {e}"))
}

/// An archiver for `cfg`, its hot tier and counters.
pub(crate) fn archiver(cfg: &Config, lake: Lake) -> (Archiver, Arc<HotTier>, Arc<ArchiveStats>) {
    let hot = HotTier::new();
    let stats = Arc::new(ArchiveStats::default());
    let archiver = archiver_into(cfg, lake, hot.clone(), stats.clone());
    (archiver, hot, stats)
}

/// An archiver for `cfg` over an existing hot tier and counters (a restart).
pub(crate) fn archiver_into(
    cfg: &Config,
    lake: Lake,
    hot: Arc<HotTier>,
    stats: Arc<ArchiveStats>,
) -> Archiver {
    Archiver::new(
        lake,
        ArchiveConfig {
            flush_interval: Duration::from_secs(cfg.history.flush_interval_secs),
            max_buffered_rows: cfg.history.max_buffered_rows,
            ..ArchiveConfig::default()
        },
        hot,
        stats,
    )
}

/// The compaction policy of `cfg`.
pub(crate) fn compact_policy(cfg: &Config) -> mdhub_history::compact::CompactPolicy {
    mdhub_history::compact::CompactPolicy {
        target_bytes: cfg.history.compact_target_mb.saturating_mul(1 << 20),
    }
}

/// The retention policy of `cfg`.
pub(crate) fn retention_policy(cfg: &Config) -> mdhub_history::retention::RetentionPolicy {
    mdhub_history::retention::RetentionPolicy {
        raw_days: (cfg.history.raw_retention_days > 0).then_some(cfg.history.raw_retention_days),
    }
}

/// How many UTC days before `at` a last-quote request looks back.
const LOOK_BACK_DAYS: u32 = 31;

/// An event as clients receive it, with its log `position`.
fn row(p: &mdhub_types::Positioned) -> Result<serde_json::Value, HistoryFailure> {
    let mut v =
        serde_json::to_value(&p.event).map_err(|e| HistoryFailure::Failed(e.to_string()))?;
    v["position"] = json!(p.position.to_string());
    Ok(v)
}

/// `/v1/history/*` over [`History`].
#[derive(Debug)]
pub(crate) struct HistoryApi(pub(crate) History);

fn failure(e: QueryError) -> HistoryFailure {
    if let Some(l) = e.limit() {
        return HistoryFailure::Limit(l.code(), e.to_string());
    }
    if e.is_invalid() {
        HistoryFailure::Invalid(e.to_string())
    } else {
        HistoryFailure::Failed(e.to_string())
    }
}

/// One page of a trades or quotes answer.
struct Page {
    table: TableKind,
    schema: datafusion::arrow::datatypes::SchemaRef,
    /// The page's rows, at most `limit`.
    batches: Vec<RecordBatch>,
    /// The same rows as events.
    events: Vec<mdhub_types::Positioned>,
    /// Where the next page starts, when rows are left after this one.
    next: Option<Cursor>,
}

/// The first `limit` rows of `batches`, and whether rows were left out.
fn take_rows(batches: &[RecordBatch], limit: usize) -> (Vec<RecordBatch>, bool) {
    let mut out = Vec::new();
    let mut left = limit;
    for b in batches {
        if b.num_rows() > left {
            if left > 0 {
                out.push(b.slice(0, left));
            }
            return (out, true);
        }
        out.push(b.clone());
        left -= b.num_rows();
    }
    (out, false)
}

/// `batches` as an Arrow IPC stream of `schema`.
fn ipc_stream(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>, HistoryFailure> {
    let ipc = |e: datafusion::arrow::error::ArrowError| HistoryFailure::Failed(e.to_string());
    let mut out = Vec::new();
    let mut writer =
        datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(ipc)?;
    for b in batches {
        writer.write(b).map_err(ipc)?;
    }
    writer.finish().map_err(ipc)?;
    drop(writer);
    Ok(out)
}

impl HistoryApi {
    /// One page of a trades or quotes request.
    async fn page(&self, req: &HistoryRequest) -> Result<Page, HistoryFailure> {
        let table = if req.kind == HistoryKind::Trades {
            TableKind::Trades
        } else {
            TableKind::Quotes
        };
        let after = req.cursor.map(|c| RowKey {
            ts: c.ts,
            partition: c.partition,
            offset: c.offset,
        });
        // One row more than asked: whether there is a next page.
        let (schema, batches) = self
            .0
            .range(
                table,
                &req.symbols,
                req.venue.as_ref(),
                req.from,
                req.to,
                after,
                req.limit.saturating_add(1),
            )
            .await
            .map_err(failure)?;
        let (batches, cut) = take_rows(&batches, req.limit);
        let mut events = Vec::new();
        for b in &batches {
            events.extend(
                mdhub_history::events(table, b)
                    .map_err(|e| HistoryFailure::Failed(e.to_string()))?,
            );
        }
        let next = events.last().filter(|_| cut).map(|p| {
            Cursor::after(
                p.event.ts_exchange(),
                p.position.partition,
                p.position.offset,
            )
        });
        Ok(Page {
            table,
            schema,
            batches,
            events,
            next,
        })
    }
}

#[async_trait::async_trait]
impl HistorySource for HistoryApi {
    async fn query(&self, req: HistoryRequest) -> Result<serde_json::Value, HistoryFailure> {
        let mut doc = mdhub_gateway::history::echo(&req);
        match req.kind {
            HistoryKind::Bars => {
                let bars = self
                    .0
                    .bars(
                        &req.symbol,
                        req.venue.as_ref(),
                        req.interval,
                        req.from,
                        req.to,
                    )
                    .await
                    .map_err(failure)?;
                let venues: std::collections::BTreeSet<_> =
                    bars.iter().filter_map(|b| b.venue.as_ref()).collect();
                doc["interval_ms"] = json!(req.interval.as_millis() as u64);
                doc["grouped_by"] = json!("venue");
                doc["venues"] = json!(venues);
                doc["bars"] = serde_json::to_value(bars)
                    .map_err(|e| HistoryFailure::Failed(e.to_string()))?;
            }
            HistoryKind::LastQuote => {
                let at = req.at.unwrap_or(req.to);
                let quotes = match &req.venue {
                    Some(v) => self
                        .0
                        .last_quote(&req.symbol, Some(v), at, LOOK_BACK_DAYS)
                        .await
                        .map_err(failure)?
                        .into_iter()
                        .collect(),
                    None => self
                        .0
                        .last_quotes(&req.symbol, at, LOOK_BACK_DAYS)
                        .await
                        .map_err(failure)?,
                };
                // The latest of them all: what `quote` was before quotes
                // were per venue (ties: the later log offset).
                let latest = quotes
                    .iter()
                    .max_by_key(|p| (p.event.ts_exchange(), p.position.offset));
                doc["at"] = json!(at);
                doc["quote"] = match latest {
                    Some(p) => row(p)?,
                    None => serde_json::Value::Null,
                };
                doc["quotes"] = quotes.iter().map(row).collect::<Result<_, _>>()?;
            }
            HistoryKind::Trades | HistoryKind::Quotes => {
                let page = self.page(&req).await?;
                let rows = page.events.iter().map(row).collect::<Result<Vec<_>, _>>()?;
                doc["truncated"] = json!(page.next.is_some());
                if let Some(next) = page.next {
                    doc["next"] = json!(next.token());
                }
                doc[page.table.as_str()] = json!(rows);
            }
        }
        Ok(doc)
    }

    async fn sql(&self, sql: &str, limit: usize) -> Result<serde_json::Value, HistoryFailure> {
        // One row more than asked: whether the answer is truncated.
        let (schema, batches) = self
            .0
            .sql_read_only(sql, Some(limit.saturating_add(1)))
            .await
            .map_err(failure)?;
        let mut rows = mdhub_history::query::json_rows(&batches).map_err(failure)?;
        let truncated = rows.len() > limit;
        rows.truncate(limit);
        let columns: Vec<serde_json::Value> = schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
            .collect();
        Ok(json!({"columns": columns, "rows": rows, "truncated": truncated}))
    }

    async fn sql_arrow(&self, sql: &str, limit: usize) -> Result<(Vec<u8>, bool), HistoryFailure> {
        let (schema, batches) = self
            .0
            .sql_read_only(sql, Some(limit.saturating_add(1)))
            .await
            .map_err(failure)?;
        let (batches, truncated) = take_rows(&batches, limit);
        Ok((ipc_stream(&schema, &batches)?, truncated))
    }

    async fn rows(
        &self,
        req: HistoryRequest,
        format: RowFormat,
    ) -> Result<(Vec<u8>, Option<Cursor>), HistoryFailure> {
        if !matches!(req.kind, HistoryKind::Trades | HistoryKind::Quotes) {
            return Err(HistoryFailure::Invalid(
                "CSV and Arrow answer trades and quotes over a range".into(),
            ));
        }
        let page = self.page(&req).await?;
        let bytes = match format {
            RowFormat::Arrow => ipc_stream(&page.schema, &page.batches)?,
            RowFormat::Csv => {
                let rows = page.events.iter().map(row).collect::<Result<Vec<_>, _>>()?;
                let columns = if page.table == TableKind::Trades {
                    csv::TRADE_COLUMNS
                } else {
                    csv::QUOTE_COLUMNS
                };
                csv::encode(columns, &rows).into_bytes()
            }
            RowFormat::Json => {
                return Err(HistoryFailure::Invalid(
                    "JSON answers come from query".into(),
                ));
            }
        };
        Ok((bytes, page.next))
    }
}
