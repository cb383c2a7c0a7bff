//! The lake's object store: a local directory or an S3 bucket.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use mdhub_types::Positioned;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, PutResult};
use url::Url;

use crate::{FileKey, HistoryError, Result, TableKind, encode_parquet, plan_files};

/// The object store rooted at the lake URL: lake paths ([`FileKey::path`])
/// are relative to it.
///
/// - a bare path (`/var/lib/mdhub/lake`, `lake`) or `file:///path`: a local
///   directory, created if missing. Its writes go to a temporary file that is
///   renamed into place, so a reader never sees half a file;
/// - `s3://bucket/prefix`: S3 or an S3-compatible store, configured from the
///   `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_SESSION_TOKEN`,
///   `AWS_ENDPOINT_URL` for a non-AWS endpoint, `AWS_ALLOW_HTTP`). Plain
///   `http://` endpoints are allowed without `AWS_ALLOW_HTTP` when they are
///   on the loopback interface (a local test server). A put of a complete
///   object is atomic on S3.
///
/// Anything else is [`HistoryError::BadUrl`].
pub fn store_from_url(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let bad = |reason: &str| HistoryError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = Url::parse(url);
    let dir = match &parsed {
        // A bare path (or a Windows drive letter, which parses as a scheme).
        Err(url::ParseError::RelativeUrlWithoutBase) => std::path::PathBuf::from(url),
        Ok(u) if u.scheme().len() == 1 => std::path::PathBuf::from(url),
        Ok(u) if u.scheme() == "file" => u
            .to_file_path()
            .map_err(|()| bad("not a local file path"))?,
        Ok(u) if u.scheme() == "s3" => return s3_store(u, url),
        Ok(u) => {
            return Err(bad(&format!(
                "unsupported scheme {:?} (expected a path, file:// or s3://)",
                u.scheme()
            )));
        }
        Err(e) => return Err(bad(&e.to_string())),
    };
    if dir.as_os_str().is_empty() {
        return Err(bad("empty path"));
    }
    std::fs::create_dir_all(&dir).map_err(|source| HistoryError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(Arc::new(LocalFileSystem::new_with_prefix(&dir)?))
}

fn s3_store(u: &Url, url: &str) -> Result<Arc<dyn ObjectStore>> {
    let bucket = u
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| HistoryError::BadUrl {
            url: url.to_owned(),
            reason: "no bucket".to_owned(),
        })?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .or_else(|_| std::env::var("AWS_ENDPOINT"))
        .ok();
    if let Some(endpoint) = endpoint.as_deref().and_then(|e| Url::parse(e).ok())
        && endpoint.scheme() == "http"
        && is_loopback(&endpoint)
    {
        builder = builder.with_allow_http(true);
    }
    let store = builder.build()?;
    let prefix = u.path().trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(PrefixStore::new(
            store,
            Path::parse(prefix).map_err(object_store::Error::from)?,
        ))
    })
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Put one complete file at `path`, replacing any file there. Writing the
/// same rows again writes the same bytes under the same name, so a retry
/// after a crash is harmless.
pub async fn write_file(store: &dyn ObjectStore, path: &Path, bytes: Bytes) -> Result<PutResult> {
    Ok(store.put(path, PutPayload::from_bytes(bytes)).await?)
}

/// A file [`write_batch`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// What the file holds.
    pub key: FileKey,
    /// Its rows.
    pub rows: usize,
    /// Its size in bytes.
    pub bytes: usize,
}

/// Plan ([`plan_files`]), encode ([`encode_parquet`]) and write
/// ([`write_file`]) the files of `rows` of `table`, one after the other.
/// On an error, the files before it are written and the rest are not.
pub async fn write_batch(
    store: &dyn ObjectStore,
    table: TableKind,
    rows: &[Positioned],
) -> Result<Vec<WrittenFile>> {
    let mut written = Vec::new();
    for file in plan_files(table, rows)? {
        let bytes = encode_parquet(table, &file.rows)?;
        let len = bytes.len();
        write_file(store, &file.key.path(), bytes).await?;
        written.push(WrittenFile {
            key: file.key,
            rows: file.rows.len(),
            bytes: len,
        });
    }
    Ok(written)
}
