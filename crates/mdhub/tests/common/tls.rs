//! Test certificates for a hub that terminates TLS itself, made with
//! `openssl` (Debian's package; scripts/test.sh installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `certificates` made: the CA to trust, and the hub's certificate
/// and key (for `127.0.0.1` and `localhost`).
pub struct Certs {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// The environment that turns TLS on in `mdhub run`.
    pub fn env(&self) -> [(&'static str, &str); 2] {
        [
            ("MDHUB_SERVER__TLS_CERT_FILE", self.cert.to_str().unwrap()),
            ("MDHUB_SERVER__TLS_KEY_FILE", self.key.to_str().unwrap()),
        ]
    }
}

/// A CA and a server certificate it signs, in `dir`, valid for two days.
pub fn certificates(dir: &Path) -> Certs {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl (Debian package openssl) makes the test certificates");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=mdhub test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    run(&ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "hub.key", "-out", "hub.csr"]);
    run(&csr);
    std::fs::write(
        dir.join("hub.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "hub.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-extfile",
        "hub.ext",
        "-out",
        "hub.pem",
    ]);
    Certs {
        ca: dir.join("ca.pem"),
        cert: dir.join("hub.pem"),
        key: dir.join("hub.key"),
    }
}
