//! Helpers shared by the end-to-end tests: start the real binary on port 0,
//! stop it, and speak HTTP to it.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test, with configuration variables of the caller's
/// environment removed.
pub fn mdhub() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mdhub"));
    for (k, _) in std::env::vars() {
        if k.starts_with("MDHUB_") || k == "PORT" {
            c.env_remove(k);
        }
    }
    c
}

/// Run `mdhub ARGS…` to completion; its stdout, after asserting it
/// succeeded (with its stderr in the failure message).
pub fn mdhub_ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = mdhub().args(args).output().expect("run mdhub");
    assert!(
        out.status.success(),
        "mdhub {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A running `mdhub run`.
#[derive(Debug)]
pub struct Hub {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub dir: PathBuf,
}

impl Hub {
    /// Start `mdhub run` on a free port with its data in `dir`.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let mut all = vec![
            "run",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        Hub::start_role(dir, &all, env)
    }

    /// Start any role (`run`, `serve`, `ingest` …) with `args`; a role without
    /// a listener gets an empty `addr`.
    pub fn start_role(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let mut cmd = mdhub();
        cmd.args(args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start mdhub run");
        // Keep the last lines of stderr, to explain a failed start.
        let log = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        let err = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for l in err.lines().map_while(Result::ok) {
                let mut q = sink.lock().unwrap();
                if q.len() == 20 {
                    q.pop_front();
                }
                q.push_back(l);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        if !line.starts_with("mdhub running: ") {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let tail: Vec<String> = log.lock().unwrap().iter().cloned().collect();
            panic!(
                "mdhub {args:?} did not start; first line {line:?}; stderr:\n{}",
                tail.join("\n")
            );
        }
        let addr = line
            .strip_prefix("mdhub running: http://")
            .or_else(|| line.strip_prefix("mdhub running: https://"))
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default()
            .to_string();
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while out.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        Hub {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// `/v1/status` as JSON.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_str(&http_get(&self.addr, "/v1/status").1).expect("status is JSON")
    }

    /// Wait until the hub has published at least `n` events (instead of
    /// sleeping after start and hoping): at most 30 s.
    pub fn wait_published(&self, n: u64) {
        wait_until(30, "events published", || {
            let p = self.status()["ingest"]["published"].as_u64().unwrap_or(0);
            (p >= n, p)
        });
    }

    /// SIGTERM and wait for a clean exit (at most 30 s).
    pub fn stop(mut self) -> ExitStatus {
        sigterm(&self.child);
        wait_exit(&mut self.child, Duration::from_secs(30))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` every 50 ms for up to `secs` seconds until it says done;
/// returns what it saw last, or panics with `what` and that value.
pub fn wait_until<T: std::fmt::Debug>(
    secs: u64,
    what: &str,
    mut f: impl FnMut() -> (bool, T),
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (done, seen) = f();
        if done {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs} s; last seen {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`wait_until`] for an async condition (polled every 100 ms).
pub async fn wait_until_async<T: std::fmt::Debug, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (bool, T)>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (done, seen) = f().await;
        if done {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {secs} s; last seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `name` (with its labels, e.g.
/// `mdhub_stage_up{stage="archiver"}`) in `/metrics`.
pub fn metric(addr: &str, name: &str) -> u64 {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    wait_until(
        limit.as_secs().max(1),
        "the process to exit",
        || match child.try_wait().unwrap() {
            Some(s) => (true, Some(s)),
            None => (false, None),
        },
    )
    .expect("exited")
}

/// The output of `child` (spawned with piped stdout and stderr) once it
/// exits successfully; killed, and the test failed with what it wrote, if it
/// runs past `limit`.
pub fn output_within(mut child: Child, limit: Duration, what: &str) -> String {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < limit {
        // Poll the exit: std has no wait with a timeout.
        std::thread::sleep(Duration::from_millis(50));
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !running,
        "{what} did not finish within {limit:?}: {stdout}{stderr}"
    );
    assert!(
        out.status.success(),
        "{what} failed ({}): {stdout}{stderr}",
        out.status
    );
    stdout
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = http_get_with(addr, path, "");
    (status, body)
}

/// A GET with extra request header lines (`"Name: value\r\n"`): (status,
/// response head, body).
pub fn http_get_with(addr: &str, path: &str, headers: &str) -> (u16, String, String) {
    http_get_waiting(addr, path, headers, Duration::from_secs(10))
}

/// [`http_get_with`] that waits up to `limit` for the answer (a request the
/// server may take long over, such as a heavy query in a debug build).
pub fn http_get_waiting(
    addr: &str,
    path: &str,
    headers: &str,
    limit: Duration,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

/// A loopback port free now, for a process that must come back on the same
/// address after a restart.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}
pub mod kafka;
pub mod log;
pub mod tls;
pub mod ws;
