//! Every query runs bounded: in memory (DataFusion's memory pool), in time,
//! in the rows and bytes it returns, and on a runtime of its own, so a
//! hostile or careless query gets a stable error instead of taking the
//! process's memory, its CPU from ingest and the gateway, or the process
//! itself (a panic inside the engine is caught and answered as an error).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use datafusion::arrow::array::RecordBatch;
use datafusion::common::DataFusionError;
use datafusion::dataframe::DataFrame;
use futures_util::StreamExt;

use super::QueryError;

/// The bounds of one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Memory the query's operators may hold (hash tables, sorts, joins);
    /// past it the query fails with [`Limit::Memory`].
    pub memory_bytes: usize,
    /// Wall time from planning to the last row; past it the query is
    /// cancelled with [`Limit::Timeout`].
    pub timeout: Duration,
    /// Bytes of result the query may return (Arrow, before any JSON); past
    /// it [`Limit::ResultSize`].
    pub result_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            memory_bytes: 512 << 20,
            timeout: Duration::from_secs(30),
            result_bytes: 64 << 20,
        }
    }
}

/// Which bound a query hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`QueryLimits::timeout`].
    Timeout,
    /// [`QueryLimits::memory_bytes`].
    Memory,
    /// [`QueryLimits::result_bytes`].
    ResultSize,
    /// The engine panicked (an Arrow array past its 2 GiB offsets, say):
    /// the query is dropped, the process goes on.
    Engine,
}

impl Limit {
    /// The stable error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Limit::Timeout => "query_timeout",
            Limit::Memory => "query_memory_exceeded",
            Limit::ResultSize => "query_result_too_large",
            Limit::Engine => "query_failed",
        }
    }
}

/// The threads queries run on: apart from the runtime of ingest and the
/// gateway, half the cores (at least one).
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads())
            .thread_name("mdhub-query")
            .enable_all()
            .build()
            .expect("the query runtime starts")
    })
}

/// Run `df` on the query runtime within `limits`: at most `max_rows` rows
/// (pushed into the plan as a limit), the batches in order.
pub(crate) async fn collect(
    df: DataFrame,
    max_rows: Option<usize>,
    limits: QueryLimits,
) -> Result<Vec<RecordBatch>, QueryError> {
    let df = match max_rows {
        Some(n) => df.limit(0, Some(n))?,
        None => df,
    };
    let run = async move {
        let mut stream = df.execute_stream().await?;
        let (mut out, mut bytes) = (Vec::new(), 0usize);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            bytes += batch.get_array_memory_size();
            if bytes > limits.result_bytes {
                return Err(QueryError::Limit(
                    Limit::ResultSize,
                    format!(
                        "the result is larger than {} MiB: select fewer rows or columns, or aggregate",
                        limits.result_bytes >> 20
                    ),
                ));
            }
            out.push(batch);
        }
        Ok(out)
    };
    let mut task = runtime().spawn(run);
    match tokio::time::timeout(limits.timeout, &mut task).await {
        Err(_) => {
            task.abort();
            Err(QueryError::Limit(
                Limit::Timeout,
                format!(
                    "the query ran longer than {} s and was cancelled",
                    limits.timeout.as_secs_f64()
                ),
            ))
        }
        Ok(Ok(r)) => r.map_err(memory_limit),
        Ok(Err(e)) if e.is_panic() => {
            let p = e.into_panic();
            let why = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            tracing::warn!(error = %why, "a query panicked inside the engine; answered as an error");
            Err(QueryError::Limit(
                Limit::Engine,
                format!("the query engine failed on this query: {why}"),
            ))
        }
        Ok(Err(e)) => Err(QueryError::Limit(Limit::Engine, e.to_string())),
    }
}

/// DataFusion's "resources exhausted" is the memory pool saying no.
fn memory_limit(e: QueryError) -> QueryError {
    match e {
        QueryError::DataFusion(df)
            if matches!(df.find_root(), DataFusionError::ResourcesExhausted(_)) =>
        {
            QueryError::Limit(
                Limit::Memory,
                format!(
                    "the query needs more memory than it may use: {}",
                    df.find_root()
                ),
            )
        }
        other => other,
    }
}

/// The memory pool of a session with `limits`.
pub(crate) fn runtime_env(
    limits: &QueryLimits,
) -> Result<Arc<datafusion::execution::runtime_env::RuntimeEnv>, DataFusionError> {
    datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_bytes, 1.0)
        .build_arc()
}
