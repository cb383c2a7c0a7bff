//! The skeleton every mdhub process runs on.
//!
//! - [`supervisor`]: a process is a list of named [`Stage`]s in
//!   [`Phase`]s; one failure policy ([`OnFailure`]: restart with backoff, or
//!   stop the process naming the stage), one ordered shutdown (feeds →
//!   ingest → log → consumers → gateway), and a [`Report`] of every stage's
//!   health for `/v1/status`, `/readyz` and `/metrics`.
//! - [`consumer`]: the one driver for log consumer groups. A consumer that
//!   writes the log's records somewhere implements [`GroupSink`]; [`drive`]
//!   owns subscribing, batching, decoding, undecodable counts, retries with
//!   the shared backoff, commits after durable writes and lag.

pub mod consumer;
pub mod supervisor;

pub use consumer::{
    ConsumerStats, DriveError, DriverConfig, GroupSink, SinkError, drive, measure_lag,
};
pub use supervisor::{
    BoxError, OnFailure, Phase, Report, Stage, StageCtx, StageHealth, StageState, Supervisor,
    SupervisorError,
};
