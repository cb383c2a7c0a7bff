//! Brokers a test owns: a `tansu` process, a TLS front (`socat`) for it, and
//! a gate that takes it away and brings it back. scripts/test.sh exports `MDHUB_TEST_TANSU`
//! (the tansu binary it installed); a missing one is a failure, not a skip.
#![allow(unreachable_pub)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (free when asked; good enough for a test).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn tansu_binary() -> PathBuf {
    std::env::var_os("MDHUB_TEST_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!("MDHUB_TEST_TANSU is not set: run scripts/test.sh, which installs tansu and points this at it")
        })
}

fn wait_listening(port: u16, child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited at start ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} does not listen on 127.0.0.1:{port} after 20 s");
}

/// A child process that is terminated (SIGTERM, then waited for) on drop.
struct Owned(Option<Child>);

impl Owned {
    fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SIGTERM, as an operator or a platform stops a broker.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tansu broker run in `dir` (its storage URL is relative to it).
pub struct Tansu {
    _child: Owned,
}

impl Tansu {
    /// Start tansu listening on `port`, telling clients to connect to
    /// `advertised` (a TLS front's port, or `port` itself).
    pub fn start(dir: &Path, port: u16, advertised: u16, storage: &str) -> Self {
        let log = dir.join(format!("tansu-{port}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("tansu log file");
        let mut child = Command::new(tansu_binary())
            .current_dir(dir)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .args(["--storage-engine", storage])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start tansu");
        wait_listening(port, &mut child, "tansu", &log);
        Self {
            _child: Owned(Some(child)),
        }
    }
}

/// A TLS front on `port` for a plain broker on `upstream`: it presents
/// `cert`/`key` and requires a client certificate signed by `ca`.
pub struct TlsFront {
    _child: Owned,
}

impl TlsFront {
    pub fn start(dir: &Path, port: u16, upstream: u16, cert: &Path, key: &Path, ca: &Path) -> Self {
        let log = dir.join(format!("socat-{port}.log"));
        let out = std::fs::File::create(&log).expect("socat log file");
        let listen = format!(
            "openssl-listen:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},cafile={},verify=1",
            cert.display(),
            key.display(),
            ca.display()
        );
        let mut child = Command::new("socat")
            .arg(listen)
            .arg(format!("tcp:127.0.0.1:{upstream}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("socat (Debian package socat) fronts the broker with TLS");
        wait_listening(port, &mut child, "socat", &log);
        Self {
            _child: Owned(Some(child)),
        }
    }
}

/// A certificate authority and certificates it signs, made with `openssl`.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .current_dir(&self.dir)
            .args(args)
            .output()
            .expect("openssl (Debian package openssl) makes the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A self-signed CA `name` (`name.pem`, `name.key`).
    pub fn ca(&self, name: &str) -> PathBuf {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]);
        self.dir.join(format!("{name}.pem"))
    }

    /// A certificate for common name `cn` signed by CA `ca`
    /// (`name.pem`, `name.key`).
    pub fn issue(&self, ca: &str, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
        ]);
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }
}

/// A TCP gate in front of a broker: while open it relays every connection;
/// [`Gate::close`] resets every relayed connection and stops listening, so
/// clients see exactly what a broker restart shows them (connections reset,
/// then refused), while the broker behind keeps its state as a durable
/// broker does across a restart.
pub struct Gate {
    port: u16,
    upstream: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    /// Open a gate on `port` to the broker on `upstream`.
    pub async fn open(port: u16, upstream: u16) -> Self {
        let mut g = Gate {
            port,
            upstream,
            task: None,
        };
        g.reopen().await;
        g
    }

    /// Listen again after [`Gate::close`].
    pub async fn reopen(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind the gate port");
        let upstream = self.upstream;
        self.task = Some(tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                relays.spawn(async move {
                    if let Ok(mut broker) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
            }
            // Dropping the set aborts every relay: their sockets close.
        }));
    }

    /// Close every relayed connection and stop listening.
    pub async fn close(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "gate still open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
