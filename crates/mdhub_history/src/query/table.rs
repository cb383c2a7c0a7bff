//! [`LakeTable`]: one history table (cold lake files plus hot rows) as a
//! DataFusion table, and the filter analysis that picks its files.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{SchemaRef, TimestampNanosecondType, UInt32Type, UInt64Type};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use mdhub_types::{Symbol, Timestamp};

use super::LAKE_URL;
use crate::archive::HotTier;
use crate::path::day_of;
use crate::{FileFilter, Lake, TableKind, live_files};

/// A lake table (cold files plus hot rows) as a DataFusion table.
#[derive(Debug)]
pub struct LakeTable {
    pub(super) table: TableKind,
    pub(super) lake: Lake,
    pub(super) hot: Option<Arc<HotTier>>,
    pub(super) schema: SchemaRef,
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        // Used to choose files only; DataFusion still applies every filter.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let filter = file_filter(filters);
        let files = self
            .lake
            .files(self.table, &filter)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let files = live_files(files);
        let mut marks: BTreeMap<(i64, Symbol, u32), u64> = BTreeMap::new();
        for f in &files {
            let m = marks
                .entry((f.key.day, f.key.symbol.clone(), f.key.partition))
                .or_insert(f.key.last_offset);
            *m = (*m).max(f.key.last_offset);
        }
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        if !files.is_empty() {
            let groups = state.config().target_partitions().max(1);
            let mut file_groups: Vec<Vec<PartitionedFile>> =
                vec![Vec::new(); groups.min(files.len())];
            let n = file_groups.len();
            for (i, f) in files.iter().enumerate() {
                file_groups[i % n].push(PartitionedFile::new(f.key.path().to_string(), f.size));
            }
            let format = ParquetFormat::default();
            let source = format.file_source(TableSchema::from(self.schema.clone()));
            let config = FileScanConfigBuilder::new(ObjectStoreUrl::parse(LAKE_URL)?, source)
                .with_file_groups(file_groups.into_iter().map(FileGroup::new).collect())
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(format.create_physical_plan(state, config).await?);
        }
        if let Some(hot) = &self.hot {
            let batches: Vec<RecordBatch> = hot
                .snapshot(self.table)
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .iter()
                .map(|b| not_in_lake(b, &marks))
                .collect::<datafusion::common::Result<_>>()?;
            let batches: Vec<RecordBatch> =
                batches.into_iter().filter(|b| b.num_rows() > 0).collect();
            if !batches.is_empty() {
                inputs.push(MemorySourceConfig::try_new_exec(
                    &[batches],
                    self.schema.clone(),
                    projection.cloned(),
                )?);
            }
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}

/// The rows of a hot batch whose group the lake holds only below them.
fn not_in_lake(
    batch: &RecordBatch,
    marks: &BTreeMap<(i64, Symbol, u32), u64>,
) -> datafusion::common::Result<RecordBatch> {
    if marks.is_empty() {
        return Ok(batch.clone());
    }
    let col = |name: &str| -> datafusion::common::Result<&ArrayRef> {
        batch
            .column_by_name(name)
            .ok_or_else(|| DataFusionError::Internal(format!("hot batch without {name}")))
    };
    let ts = col("ts_exchange")?.as_primitive::<TimestampNanosecondType>();
    let symbol = col("symbol")?.as_string::<i32>();
    let partition = col("log_partition")?.as_primitive::<UInt32Type>();
    let offset = col("log_offset")?.as_primitive::<UInt64Type>();
    let mut keep = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        let mark = Symbol::new(symbol.value(r)).ok().and_then(|s| {
            marks
                .get(&(
                    day_of(Timestamp::from_nanos(ts.value(r))),
                    s,
                    partition.value(r),
                ))
                .copied()
        });
        keep.push(mark.is_none_or(|m| offset.value(r) > m));
    }
    Ok(filter_record_batch(batch, &BooleanArray::from(keep))?)
}

/// Which files a query's filters can touch: one symbol, a range of days.
pub(super) fn file_filter(filters: &[Expr]) -> FileFilter {
    let mut out = FileFilter::default();
    let (mut lo, mut hi): (Option<i64>, Option<i64>) = (None, None);
    let mut visit = |e: &Expr| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
            if let Expr::Between(b) = e
                && !b.negated
                && is_column(&b.expr, "ts_exchange")
                && let (Some(l), Some(h)) = (timestamp(&b.low), timestamp(&b.high))
            {
                lo = Some(lo.map_or(l, |x| x.max(l)));
                hi = Some(hi.map_or(h, |x| x.min(h)));
            }
            return;
        };
        // Normalize to `column op literal`.
        let (column, op, literal) = if matches!(**left, Expr::Column(_)) {
            (left, *op, right)
        } else if let Some(swapped) = op.swap() {
            (right, swapped, left)
        } else {
            return;
        };
        if is_column(column, "symbol") && op == Operator::Eq {
            if let Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) =
                &**literal
            {
                // Not a canonical symbol: no file can match, but listing
                // everything is the safe answer.
                if let Ok(sym) = Symbol::new(s) {
                    out.symbol = Some(sym);
                }
            }
        } else if is_column(column, "ts_exchange")
            && let Some(t) = timestamp(literal)
        {
            match op {
                Operator::Gt | Operator::GtEq => lo = Some(lo.map_or(t, |x| x.max(t))),
                Operator::Lt | Operator::LtEq => hi = Some(hi.map_or(t, |x| x.min(t))),
                Operator::Eq => {
                    lo = Some(t);
                    hi = Some(t);
                }
                _ => {}
            }
        }
    };
    for f in filters {
        for conjunct in split_and(f) {
            visit(conjunct);
        }
    }
    if lo.is_some() || hi.is_some() {
        let day = |t: i64| day_of(Timestamp::from_nanos(t));
        out.days = Some(lo.map_or(i64::MIN, day)..=hi.map_or(i64::MAX, day));
    }
    out
}

fn split_and(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut v = split_and(left);
            v.extend(split_and(right));
            v
        }
        e => vec![e],
    }
}

fn is_column(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

/// A timestamp literal in nanoseconds.
fn timestamp(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampNanosecond(Some(n), _) => Some(*n),
        ScalarValue::TimestampMicrosecond(Some(n), _) => n.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(n), _) => n.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(n), _) => n.checked_mul(1_000_000_000),
        _ => None,
    }
}
