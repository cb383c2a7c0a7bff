//! Sockets that hold connections without finishing a request (slowloris),
//! on the real binary: they lose their permits after the request-head
//! deadline, so normal requests get through; and one address cannot take
//! more than its share.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Hub, http_get, metric};

/// A socket that sends a request line and then one header byte now and then.
fn trickler(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s
}

/// Whether the server has closed `s` (EOF or reset), trickling one byte.
fn closed_by_server(s: &mut TcpStream) -> bool {
    if s.write_all(b"X").is_err() {
        return true;
    }
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// A GET's first response line, or `None` when the server closed the
/// connection without answering.
fn try_get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    raw.lines().next().map(str::to_owned)
}

#[test]
fn trickling_sockets_lose_their_permits_and_normal_requests_get_through() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(
        dir.path(),
        &["--sim-rate", "50"],
        &[
            ("MDHUB_GATEWAY__MAX_CONNECTIONS", "8"),
            ("MDHUB_GATEWAY__HEADER_TIMEOUT_MS", "1000"),
        ],
    );
    // More slow sockets than permits: the last ones wait in the backlog.
    // (That they held permits shows at the end: the server closes each.)
    let mut slow: Vec<TcpStream> = (0..12).map(|_| trickler(&hub.addr)).collect();
    let started = Instant::now();
    let (code, _) = http_get(&hub.addr, "/healthz");
    let waited = started.elapsed();
    assert_eq!(code, 200);
    assert!(
        waited < Duration::from_secs(8),
        "a normal request waited {waited:?} behind slow sockets"
    );
    // Every trickler is closed by the server within a few deadlines.
    common::wait_until(10, "slow sockets closed", || {
        let open = slow.iter_mut().map(closed_by_server).filter(|c| !c).count();
        (open == 0, open)
    });
    assert!(hub.stop().success());
}

#[test]
fn one_address_gets_at_most_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(
        dir.path(),
        &["--sim-rate", "50"],
        &[("MDHUB_GATEWAY__MAX_CONNECTIONS_PER_IP", "3")],
    );
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&hub.addr).unwrap())
        .collect();
    // The fourth from 127.0.0.1 is closed at once, without an answer.
    let mut fourth = TcpStream::connect(&hub.addr).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut b = [0u8; 64];
    let got = fourth.read(&mut b);
    assert!(
        matches!(got, Ok(0) | Err(_)),
        "refused without an answer: {got:?}"
    );
    drop(held);
    // Their slots are free again once the server has seen them close.
    common::wait_until(10, "a connection accepted again", || {
        let answer = try_get(&hub.addr);
        (answer.is_some(), answer)
    });
    assert!(metric(&hub.addr, "mdhub_gateway_refused_per_ip_total") >= 1);
    assert!(hub.stop().success());
}
