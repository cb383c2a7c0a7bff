//! Retention as one policy: raw ticks older than N days are dropped, their
//! minute bars are kept.
//!
//! A file whose UTC date is more than `raw_days` before today is rewritten,
//! under the same name, without rows: a trades file keeps its minute bars
//! per venue in the footer ([`crate::bars`]), so bars of any whole-minute
//! width still answer for those days. Keeping the file (and so its name) keeps the
//! archiver's watermarks: rows the log still holds for those days are never
//! archived again. The rewrite is one atomic put per file.

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use object_store::ObjectStoreExt;

use crate::encode::encode_batch;
use crate::{FileFilter, Lake, Result, TableKind, live_files, schema};

/// What [`apply`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep raw ticks (trades and quotes rows) of this many UTC days before
    /// today; older days keep only their minute bars. `None`: keep forever.
    pub raw_days: Option<u32>,
}

/// What one [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Files whose rows were dropped.
    pub files_thinned: usize,
    /// Rows dropped.
    pub rows_dropped: u64,
}

/// Drop the rows of files older than the policy allows (`today`: days since
/// 1970-01-01, UTC).
pub async fn apply(lake: &Lake, policy: &RetentionPolicy, today: i64) -> Result<RetentionReport> {
    let mut report = RetentionReport::default();
    let Some(days) = policy.raw_days else {
        return Ok(report);
    };
    let last_dropped = today - i64::from(days) - 1;
    for table in TableKind::ALL {
        let filter = FileFilter {
            symbol: None,
            days: Some(i64::MIN..=last_dropped),
        };
        for f in live_files(lake.files(table, &filter).await?) {
            let path = f.key.path();
            let bytes = lake.store().get(&path).await?.bytes().await?;
            let (batches, footer) = crate::compact::read_file(bytes)?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows == 0 {
                continue;
            }
            let footer = if table == TableKind::Trades {
                let trades = crate::bars::trades_of(&batches)?;
                Some(crate::bars::to_json(&footer.with_rows(&trades)?))
            } else {
                None
            };
            let empty = RecordBatch::new_empty(schema(table, &[]));
            let thin: Bytes = encode_batch(table, &empty, footer)?;
            lake.put(&path, thin).await?;
            report.files_thinned += 1;
            report.rows_dropped += rows as u64;
        }
    }
    Ok(report)
}
