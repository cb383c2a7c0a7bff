//! Compaction: the many small files the archiver writes (one per table, date,
//! symbol and partition at every flush) merged into few large ones.
//!
//! Within one table, date, symbol and log partition, runs of consecutive
//! files (in log order) smaller than the target size are read, merged,
//! sorted like any lake file, and written as one file named after the whole
//! run's offsets — `part-P-FIRST-LAST.parquet` with `FIRST` of the run's
//! first file and `LAST` of its last. Then the run's files are deleted.
//!
//! Why no row is lost or read twice, even when compaction is killed midway
//! or runs while the archiver writes:
//! - the merged file is complete before it appears (local: temporary file
//!   and rename; S3: one put), and the sources are deleted only after it is
//!   durable;
//! - until they are deleted, [`crate::live_files`] hides the sources from
//!   readers: a file whose offset range another file of the group covers is
//!   not read ([`crate::query`] lists files that way). The next compaction
//!   deletes such leftovers first;
//! - the archiver only ever writes rows above a group's highest offset
//!   ([`crate::Lake::watermark`]), which compaction keeps, so its new files
//!   never fall inside a merged range.
//!
//! Readers that list the directory themselves (DuckDB, Athena, Spark) could
//! see a merged file and its sources together for the moment between the
//! write and the deletes; `docs/history.md` says how to read exactly once
//! regardless (by `log_partition, log_offset`).

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use mdhub_types::Symbol;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::encode::encode_batch;
use crate::{
    FileFilter, FileKey, HistoryError, Lake, LakeFile, Result, TableKind, live_files, schema,
};

/// What [`compact`] merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactPolicy {
    /// Files at least this large are left alone, and a merged file stops
    /// growing once it reaches it. Default 64 MiB (about 4 million trades).
    pub target_bytes: u64,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy {
            target_bytes: 64 << 20,
        }
    }
}

/// What one [`compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Files read and merged.
    pub files_merged: usize,
    /// Files written.
    pub files_written: usize,
    /// Rows rewritten.
    pub rows: usize,
    /// Files deleted: merged sources and leftovers an earlier, interrupted
    /// compaction had already merged.
    pub files_deleted: usize,
}

/// Merge the small files of `table` that `filter` selects (see the module docs).
pub async fn compact(
    lake: &Lake,
    table: TableKind,
    filter: &FileFilter,
    policy: &CompactPolicy,
) -> Result<CompactReport> {
    let mut report = CompactReport::default();
    let all = lake.files(table, filter).await?;
    let live = live_files(all.clone());
    let keep: HashSet<FileKey> = live.iter().map(|f| f.key.clone()).collect();
    for f in all.iter().filter(|f| !keep.contains(&f.key)) {
        lake.delete(&f.key.path()).await?;
        report.files_deleted += 1;
    }
    let mut groups: BTreeMap<(i64, Symbol, u32), Vec<LakeFile>> = BTreeMap::new();
    for f in live {
        groups
            .entry((f.key.day, f.key.symbol.clone(), f.key.partition))
            .or_default()
            .push(f);
    }
    for (_, files) in groups {
        // Runs of consecutive small files, each below the target in total.
        let mut runs: Vec<Vec<LakeFile>> = vec![Vec::new()];
        let mut size = 0;
        for f in files {
            if f.size >= policy.target_bytes {
                runs.push(Vec::new());
                size = 0;
                continue;
            }
            if size + f.size > policy.target_bytes && !runs.last().is_some_and(Vec::is_empty) {
                runs.push(Vec::new());
                size = 0;
            }
            size += f.size;
            runs.last_mut().expect("non-empty").push(f);
        }
        for run in runs.into_iter().filter(|r| r.len() > 1) {
            let rows = merge(lake, table, &run).await?;
            report.files_merged += run.len();
            report.files_written += 1;
            report.rows += rows;
            for f in &run {
                lake.delete(&f.key.path()).await?;
                report.files_deleted += 1;
            }
        }
    }
    Ok(report)
}

/// Write one file holding the rows of `run` (consecutive files of one
/// group); returns its row count. A trades file's minute bars are its
/// sources' bars combined, per venue (so bars survive files whose rows are
/// gone; sources written before bars were per venue count as
/// [`crate::bars::Stored::with_rows`] says).
async fn merge(lake: &Lake, table: TableKind, run: &[LakeFile]) -> Result<usize> {
    let mut batches = Vec::new();
    let mut bars = crate::bars::VenueBars::new();
    for f in run {
        let bytes = lake.store().get(&f.key.path()).await?.bytes().await?;
        let (file_batches, stored) = read_file(bytes)?;
        if table == TableKind::Trades {
            let rows = crate::bars::trades_of(&file_batches)?;
            crate::bars::merge_all(&mut bars, stored.with_rows(&rows)?)?;
        }
        batches.extend(file_batches);
    }
    let footer = (table == TableKind::Trades).then(|| crate::bars::to_json(&bars));
    let merged = tokio::task::spawn_blocking(move || -> Result<(Bytes, usize)> {
        let schema = schema(table, &[]);
        let all = concat_batches(&schema, &batches)?;
        let sorted = sort_like_lake(&all)?;
        Ok((encode_batch(table, &sorted, footer)?, sorted.num_rows()))
    })
    .await
    .map_err(|e| HistoryError::Io {
        path: "<compaction>".into(),
        source: std::io::Error::other(e),
    })??;
    let key = FileKey {
        first_offset: run[0].key.first_offset,
        last_offset: run[run.len() - 1].key.last_offset,
        ..run[0].key.clone()
    };
    lake.put(&key.path(), merged.0).await?;
    Ok(merged.1)
}

/// Every batch of one Parquet file of the lake, and its minute-bars footer.
pub(crate) fn read_file(bytes: Bytes) -> Result<(Vec<RecordBatch>, crate::bars::Stored)> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let footer = crate::bars::Stored::of(builder.metadata());
    let reader = builder.with_batch_size(64 * 1024).build()?;
    let batches = reader
        .map(|b| b.map_err(HistoryError::from))
        .collect::<Result<_>>()?;
    Ok((batches, footer))
}

/// Every `every` until `stop`: compact every table's files, then apply
/// `retention` (work under way finishes first). Failures are logged and
/// retried next time.
pub async fn run_periodic(
    lake: Lake,
    every: std::time::Duration,
    policy: CompactPolicy,
    retention: crate::retention::RetentionPolicy,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        for table in TableKind::ALL {
            match compact(&lake, table, &FileFilter::default(), &policy).await {
                Ok(r) if r.files_merged > 0 || r.files_deleted > 0 => tracing::info!(
                    %table, merged = r.files_merged, written = r.files_written,
                    deleted = r.files_deleted, rows = r.rows, "lake compacted"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%table, error = %e, "lake compaction failed; retrying at the next interval")
                }
            }
        }
        let today = mdhub_types::Timestamp::now()
            .as_nanos()
            .div_euclid(86_400_000_000_000);
        match crate::retention::apply(&lake, &retention, today).await {
            Ok(r) if r.files_thinned > 0 => tracing::info!(
                files = r.files_thinned,
                rows = r.rows_dropped,
                "raw ticks past retention dropped (minute bars kept)"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "lake retention failed; retrying at the next interval")
            }
        }
    }
}

/// Sorted by `ts_received`, then `log_offset` (the order of every lake file).
fn sort_like_lake(batch: &RecordBatch) -> Result<RecordBatch> {
    let col = |name: &str| -> Result<SortColumn> {
        let values = batch
            .column_by_name(name)
            .ok_or_else(|| HistoryError::BadRow(format!("no column {name}")))?
            .clone();
        Ok(SortColumn {
            values,
            options: None,
        })
    };
    let indices = lexsort_to_indices(&[col("ts_received")?, col("log_offset")?], None)?;
    Ok(take_record_batch(batch, &indices)?)
}
