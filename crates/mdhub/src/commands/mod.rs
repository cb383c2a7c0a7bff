//! One module per subcommand.

pub mod auth;
pub mod backfill;
pub mod bench;
pub mod bench_bus;
pub mod bench_cache;
pub mod bench_feed;
pub mod bench_history;
pub mod bench_nats;
pub mod bench_queries;
pub mod log;
pub mod normalize;
pub mod query;
pub mod roles;
pub mod run;
pub mod tail;

/// Build a tokio runtime and run `fut` on it; a runtime that cannot start is
/// reported on one line with exit status 1.
pub(crate) fn block_on<F: std::future::Future<Output = std::process::ExitCode>>(
    multi_thread: bool,
    fut: F,
) -> std::process::ExitCode {
    let mut b = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    match b.enable_all().build() {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
