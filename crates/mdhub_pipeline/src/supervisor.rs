//! The supervisor: every long-running part of a process is a named
//! [`Stage`]; a role (`run`, `ingest`, `serve`, …) is a list of stages.
//!
//! ## Contract
//!
//! - **Start**: every stage is started at once, each on its own task.
//! - **Ordered shutdown**: stages belong to a [`Phase`]. On a stop (a signal,
//!   `--exit-after`, a replay that finished, a stage that must not go on),
//!   the phases stop one after the other in [`Phase::ORDER`] — feeds, ingest,
//!   log, consumers, gateway — and a phase is cancelled only once every stage
//!   of the phase before it has returned. So the ingest stage drains what the
//!   feeds sent, the log is synced after that, the group consumers read on
//!   to the log's end, and clients are closed last. The whole sequence is
//!   bounded by the budget given to [`Supervisor::run`].
//! - **Failure policy**: a stage fails when its future returns an error,
//!   panics, or returns before the shutdown started (unless it is a stage
//!   that [`Stage::finishes`] by itself; once the shutdown has started a
//!   stage may end when its input does, as ingest does once the feeds are
//!   gone). What happens then is the stage's
//!   [`OnFailure`]: `Restart` runs it again after a capped, fully jittered
//!   backoff (reset after a minute of health), `Exit` stops the whole process
//!   through the ordered shutdown, and [`Supervisor::run`] returns one line
//!   naming the stage and its error. The same for every stage.
//! - **Health**: each stage has a [`StageHealth`] that the supervisor keeps
//!   (running, restarting, failed, stopped) and the stage itself may mark
//!   as retrying (a sink that is down while the stage retries in place).
//!   [`Report`] is what `/v1/status`, `/readyz` and `/metrics` read.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mdhub_types::Backoff;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Any error a stage returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One run of a stage.
pub type StageFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;

/// When a stage stops, relative to the others (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Venue connections (and the raw capture that records them).
    Feeds,
    /// Feeds → log: drains what the feeds sent.
    Ingest,
    /// The log's own upkeep: a final sync once ingest has published all.
    Log,
    /// Group consumers (cache writer, archiver, PostgreSQL writer), the
    /// cache follower, compaction, the status line.
    Consumers,
    /// Clients: closed last, so they see every update published before.
    Gateway,
}

impl Phase {
    /// The shutdown order.
    pub const ORDER: [Phase; 5] = [
        Phase::Feeds,
        Phase::Ingest,
        Phase::Log,
        Phase::Consumers,
        Phase::Gateway,
    ];

    /// The phase's name in status documents.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Feeds => "feeds",
            Phase::Ingest => "ingest",
            Phase::Log => "log",
            Phase::Consumers => "consumers",
            Phase::Gateway => "gateway",
        }
    }
}

/// What the supervisor does when a stage fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Run it again after a backoff: for stages that lose nothing by
    /// starting over (group consumers resume from their committed offsets,
    /// a feed reconnects).
    Restart,
    /// Stop the process (ordered shutdown) and report the stage's error: for
    /// stages whose state cannot be rebuilt in place (ingest owns the feeds'
    /// channel, the gateway owns the listener).
    Exit,
}

/// The state of a stage, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StageState {
    /// Started, working.
    Running = 0,
    /// Running, but what it writes to is failing; it retries in place.
    Retrying = 1,
    /// Failed; waiting to be started again.
    Restarting = 2,
    /// Failed for good (its policy is `Exit`): the process is stopping.
    Failed = 3,
    /// Asked to stop; finishing its work.
    Stopping = 4,
    /// Stopped after being asked to.
    Stopped = 5,
    /// Returned by itself, as such a stage does (a replayed capture).
    Finished = 6,
}

impl StageState {
    fn from_u8(v: u8) -> StageState {
        match v {
            0 => StageState::Running,
            1 => StageState::Retrying,
            2 => StageState::Restarting,
            3 => StageState::Failed,
            4 => StageState::Stopping,
            5 => StageState::Stopped,
            _ => StageState::Finished,
        }
    }

    /// The state's name in status documents.
    pub fn name(self) -> &'static str {
        match self {
            StageState::Running => "running",
            StageState::Retrying => "retrying",
            StageState::Restarting => "restarting",
            StageState::Failed => "failed",
            StageState::Stopping => "stopping",
            StageState::Stopped => "stopped",
            StageState::Finished => "finished",
        }
    }

    /// Whether the stage is doing its job now.
    pub fn healthy(self) -> bool {
        !matches!(
            self,
            StageState::Retrying | StageState::Restarting | StageState::Failed
        )
    }
}

/// A stage's health, shared by the stage, the supervisor and the reporters.
#[derive(Debug)]
pub struct StageHealth {
    name: String,
    phase: Phase,
    on_failure: OnFailure,
    critical: bool,
    state: AtomicU8,
    failures: AtomicU64,
    restarts: AtomicU64,
    last_error: Mutex<Option<String>>,
    since: Mutex<Instant>,
}

impl StageHealth {
    fn new(name: String, phase: Phase, on_failure: OnFailure, critical: bool) -> Self {
        StageHealth {
            name,
            phase,
            on_failure,
            critical,
            state: AtomicU8::new(StageState::Running as u8),
            failures: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            last_error: Mutex::new(None),
            since: Mutex::new(Instant::now()),
        }
    }

    /// A health that belongs to no supervisor (tests, one-shot commands).
    pub fn detached(name: &str) -> Arc<StageHealth> {
        Arc::new(StageHealth::new(
            name.to_string(),
            Phase::Consumers,
            OnFailure::Exit,
            false,
        ))
    }

    fn set(&self, s: StageState) {
        if self.state.swap(s as u8, Ordering::AcqRel) != s as u8 {
            *self.since.lock() = Instant::now();
        }
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage's phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The stage's failure policy.
    pub fn on_failure(&self) -> OnFailure {
        self.on_failure
    }

    /// Whether this stage failing makes the process not ready.
    pub fn critical(&self) -> bool {
        self.critical
    }

    /// The current state.
    pub fn state(&self) -> StageState {
        StageState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Failures so far (errors returned, or failed attempts while retrying in place).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Times the supervisor started the stage again.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// The last error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// How long the stage has been in its current state.
    pub fn in_state_for(&self) -> Duration {
        self.since.lock().elapsed()
    }

    /// Called by a stage whose target is failing while it retries in place
    /// (the log keeps the records meanwhile): counted, reported, not ready.
    pub fn retrying(&self, error: &dyn fmt::Display) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
        if self.state() == StageState::Running {
            self.set(StageState::Retrying);
        }
    }

    /// Called by a stage once its target works again.
    pub fn recovered(&self) {
        if self.state() == StageState::Retrying {
            self.set(StageState::Running);
        }
    }

    fn failed(&self, error: &str, next: StageState) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error.to_string());
        self.set(next);
    }
}

/// What a stage gets each time it is started.
#[derive(Debug, Clone)]
pub struct StageCtx {
    /// Cancelled when the stage's phase is asked to stop.
    pub stop: CancellationToken,
    /// Where the stage reports retrying in place and recovering.
    pub health: Arc<StageHealth>,
}

type Make = Box<dyn FnMut(StageCtx) -> StageFuture + Send>;

/// A named long-running part of a process (see the module docs).
pub struct Stage {
    name: String,
    phase: Phase,
    on_failure: OnFailure,
    critical: bool,
    finishes: bool,
    make: Make,
}

impl fmt::Debug for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("phase", &self.phase)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// A stage named `name` that stops in `phase`; `make` starts one run of
    /// it (called again on each restart). Its policy is `Exit` unless
    /// [`Stage::restart`] says otherwise.
    pub fn new<F, Fut, E>(name: impl Into<String>, phase: Phase, mut make: F) -> Stage
    where
        F: FnMut(StageCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Stage {
            name: name.into(),
            phase,
            on_failure: OnFailure::Exit,
            critical: false,
            finishes: false,
            make: Box::new(move |ctx| {
                let f = make(ctx);
                Box::pin(async move { f.await.map_err(Into::into) })
            }),
        }
    }

    /// A stage that can run only once (it owns something a restart could not
    /// get back, such as a listener or a channel's receiving end); its
    /// policy is `Exit`.
    pub fn once<F, Fut, E>(name: impl Into<String>, phase: Phase, f: F) -> Stage
    where
        F: FnOnce(StageCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let mut f = Some(f);
        Stage::new(name, phase, move |ctx| {
            let f = f.take();
            async move {
                match f {
                    Some(f) => f(ctx).await.map_err(Into::into),
                    None => Err::<(), BoxError>("this stage cannot be started twice".into()),
                }
            }
        })
    }

    /// Restart this stage after a backoff when it fails.
    pub fn restart(mut self) -> Stage {
        self.on_failure = OnFailure::Restart;
        self
    }

    /// This stage failing (or retrying) makes the process not ready
    /// (`/readyz` 503); other stages only make it degraded.
    pub fn critical(mut self) -> Stage {
        self.critical = true;
        self
    }

    /// This stage may return `Ok` before it is asked to stop (a replayed
    /// capture ends); that is not a failure.
    pub fn finishes(mut self) -> Stage {
        self.finishes = true;
        self
    }

    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Every stage's health, in the order they were added.
#[derive(Debug, Clone, Default)]
pub struct Report(Arc<Mutex<Vec<Arc<StageHealth>>>>);

impl Report {
    /// The stages.
    pub fn stages(&self) -> Vec<Arc<StageHealth>> {
        self.0.lock().clone()
    }

    /// The stages that are not healthy now.
    pub fn unhealthy(&self) -> Vec<Arc<StageHealth>> {
        self.stages()
            .into_iter()
            .filter(|s| !s.state().healthy())
            .collect()
    }
}

/// Why [`Supervisor::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A stage whose policy is `Exit` failed.
    #[error("stage `{stage}` failed: {error}")]
    Stage {
        /// The stage's name.
        stage: String,
        /// Its error.
        error: String,
    },
    /// The ordered shutdown did not finish in its budget.
    #[error("shutdown took longer than {0:?} (still running: {1})")]
    ShutdownTimeout(Duration, String),
}

/// Runs stages (see the module docs).
#[derive(Debug)]
pub struct Supervisor {
    stages: Vec<(Stage, Arc<StageHealth>)>,
    report: Report,
    restart_base: Duration,
    restart_cap: Duration,
    stop_when_finished: Option<Phase>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new()
    }
}

impl Supervisor {
    /// No stages yet; restarts back off from 0.5 s up to 30 s.
    pub fn new() -> Self {
        Supervisor {
            stages: Vec::new(),
            report: Report::default(),
            restart_base: Duration::from_millis(500),
            restart_cap: Duration::from_secs(30),
            stop_when_finished: None,
        }
    }

    /// Back off restarts from `base` up to `cap`.
    pub fn with_restart_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.restart_base = base;
        self.restart_cap = cap;
        self
    }

    /// Stop the process once every stage of `phase` has finished by itself
    /// (`mdhub replay`: the captures are played).
    pub fn stop_when_finished(&mut self, phase: Phase) {
        self.stop_when_finished = Some(phase);
    }

    /// Add a stage; returns its health.
    pub fn add(&mut self, stage: Stage) -> Arc<StageHealth> {
        let health = Arc::new(StageHealth::new(
            stage.name.clone(),
            stage.phase,
            stage.on_failure,
            stage.critical,
        ));
        self.report.0.lock().push(health.clone());
        self.stages.push((stage, health.clone()));
        health
    }

    /// Every stage's health, for status, readiness and metrics.
    pub fn report(&self) -> Report {
        self.report.clone()
    }

    /// Run every stage until `stop` resolves (its value is the reason that
    /// is logged), a stage with policy `Exit` fails, or the phase given to
    /// [`Supervisor::stop_when_finished`] is done; then shut down in
    /// [`Phase::ORDER`] within `budget`.
    pub async fn run(
        self,
        stop: impl Future<Output = String>,
        budget: Duration,
    ) -> Result<(), SupervisorError> {
        let tokens: Vec<CancellationToken> = Phase::ORDER
            .iter()
            .map(|_| CancellationToken::new())
            .collect();
        let token_of =
            |p: Phase| tokens[Phase::ORDER.iter().position(|&q| q == p).unwrap_or(0)].clone();
        // Cancelled when the shutdown starts: a stage whose input ends then
        // (ingest, once the feeds are gone) returns before its own phase is
        // stopped, and that is not a failure.
        let shutting_down = CancellationToken::new();
        let (fatal_tx, mut fatal_rx) = mpsc::unbounded_channel::<(String, String)>();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Phase>();
        let mut runners: Vec<(Phase, String, tokio::task::JoinHandle<()>)> = Vec::new();
        let mut finishing = 0usize;
        for (stage, health) in self.stages {
            let phase = stage.phase;
            if Some(phase) == self.stop_when_finished {
                finishing += 1;
            }
            let name = stage.name.clone();
            let backoff = Backoff::new(self.restart_base, self.restart_cap);
            let runner = tokio::spawn(supervise(
                stage,
                health,
                token_of(phase),
                shutting_down.clone(),
                backoff,
                fatal_tx.clone(),
                done_tx.clone(),
            ));
            runners.push((phase, name, runner));
        }
        drop((fatal_tx, done_tx));
        let watch_finished = async {
            if finishing == 0 {
                return std::future::pending::<()>().await;
            }
            let mut left = finishing;
            while let Some(p) = done_rx.recv().await {
                if Some(p) == self.stop_when_finished {
                    left -= 1;
                    if left == 0 {
                        return;
                    }
                }
            }
            std::future::pending::<()>().await
        };
        let mut failure = None;
        let reason = tokio::select! {
            r = stop => r,
            _ = watch_finished => "every stage of the replay finished".to_string(),
            Some((stage, error)) = fatal_rx.recv() => {
                let reason = format!("stage `{stage}` failed");
                failure = Some(SupervisorError::Stage { stage, error });
                reason
            }
        };
        tracing::info!(reason = %reason, "shutting down");
        shutting_down.cancel();
        let shutdown = async {
            for (i, phase) in Phase::ORDER.iter().enumerate() {
                tokens[i].cancel();
                let mut names = Vec::new();
                for (p, name, runner) in runners.iter_mut() {
                    if p == phase {
                        names.push(name.clone());
                        let _ = runner.await;
                    }
                }
                if !names.is_empty() {
                    tracing::info!(phase = phase.name(), stages = %names.join(", "), "phase stopped");
                }
            }
        };
        if tokio::time::timeout(budget, shutdown).await.is_err() {
            let left: Vec<String> = runners
                .iter()
                .filter(|(_, _, r)| !r.is_finished())
                .map(|(_, n, _)| n.clone())
                .collect();
            for (_, _, r) in &runners {
                r.abort();
            }
            return Err(
                failure.unwrap_or(SupervisorError::ShutdownTimeout(budget, left.join(", ")))
            );
        }
        // A stage that failed while the others stopped is reported too.
        while let Ok((stage, error)) = fatal_rx.try_recv() {
            if failure.is_none() {
                failure = Some(SupervisorError::Stage { stage, error });
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// Run one stage under its policy until it is stopped, finishes, or fails
/// for good. The stage's `make` (and whatever it holds, such as the feeds'
/// channel) is dropped when this returns.
async fn supervise(
    mut stage: Stage,
    health: Arc<StageHealth>,
    stop: CancellationToken,
    shutting_down: CancellationToken,
    mut backoff: Backoff,
    fatal: mpsc::UnboundedSender<(String, String)>,
    done: mpsc::UnboundedSender<Phase>,
) {
    loop {
        let ctx = StageCtx {
            stop: stop.clone(),
            health: health.clone(),
        };
        health.set(StageState::Running);
        let started = Instant::now();
        let run = tokio::spawn((stage.make)(ctx));
        let stopping = {
            let stop = stop.clone();
            let health = health.clone();
            async move {
                stop.cancelled().await;
                health.set(StageState::Stopping);
                std::future::pending::<()>().await
            }
        };
        let outcome = tokio::select! {
            r = run => r,
            _ = stopping => unreachable!("pending"),
        };
        let error = match outcome {
            Ok(Ok(())) if stop.is_cancelled() || shutting_down.is_cancelled() => {
                health.set(StageState::Stopped);
                return;
            }
            Ok(Ok(())) if stage.finishes => {
                health.set(StageState::Finished);
                let _ = done.send(stage.phase);
                return;
            }
            Ok(Ok(())) => "stopped unexpectedly".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e.into_panic())),
            Err(e) => format!("task failed: {e}"),
        };
        if stop.is_cancelled() || shutting_down.is_cancelled() {
            // Failing while stopping: say so, but there is nothing to restart.
            tracing::warn!(stage = %stage.name, error = %error, "stage failed while stopping");
            health.failed(&error, StageState::Failed);
            if stage.on_failure == OnFailure::Exit {
                let _ = fatal.send((stage.name.clone(), error));
            }
            return;
        }
        match stage.on_failure {
            OnFailure::Exit => {
                tracing::error!(stage = %stage.name, error = %error, "stage failed; stopping the process");
                health.failed(&error, StageState::Failed);
                let _ = fatal.send((stage.name.clone(), error));
                return;
            }
            OnFailure::Restart => {
                backoff.healthy_for(started.elapsed());
                let wait = backoff.next_delay();
                tracing::warn!(stage = %stage.name, error = %error, restart_in_ms = wait.as_millis() as u64,
                    "stage failed; restarting");
                health.failed(&error, StageState::Restarting);
                tokio::select! {
                    _ = stop.cancelled() => {
                        health.set(StageState::Stopped);
                        return;
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
                health.restarts.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}
