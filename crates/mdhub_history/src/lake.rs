//! The lake as a whole: where it is, durable writes, and which files it holds.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use mdhub_types::Symbol;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::path::day_of_date;
use crate::{FileKey, HistoryError, Result, TableKind, store_from_url};

/// One lake file and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LakeFile {
    /// What the file holds (parsed from its name).
    pub key: FileKey,
    /// Its size in bytes.
    pub size: u64,
}

/// Which files of a table [`Lake::files`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFilter {
    /// Only this symbol's files.
    pub symbol: Option<Symbol>,
    /// Only these UTC days (days since 1970-01-01, both ends included).
    pub days: Option<RangeInclusive<i64>>,
}

/// The lake: the object store under the lake URL and, for a local directory,
/// its path, so that writes there can be made durable.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    local: Option<PathBuf>,
    url: String,
}

impl Lake {
    /// Open the lake at `url` (see [`store_from_url`] for what it accepts).
    pub fn open(url: &str) -> Result<Lake> {
        let store = store_from_url(url)?;
        let local = match url::Url::parse(url) {
            Ok(u) if u.scheme() == "file" => u.to_file_path().ok(),
            Ok(u) if u.scheme().len() > 1 => None,
            _ => Some(PathBuf::from(url)),
        };
        Ok(Lake {
            store,
            local,
            url: url.to_owned(),
        })
    }

    /// The lake URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store (lake paths are relative to it).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The local directory, when the lake is one.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// Put one complete file at `path` and make it durable before returning:
    /// on S3 a successful put is; in a local directory the file and the
    /// directories above it up to the lake root are fsynced (the store writes
    /// a temporary file and renames it, so a reader never sees half a file).
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<()> {
        self.store.put(path, PutPayload::from_bytes(bytes)).await?;
        if let Some(root) = &self.local {
            let root = root.clone();
            let rel = PathBuf::from(path.as_ref());
            tokio::task::spawn_blocking(move || sync_path(&root, &rel))
                .await
                .map_err(|e| HistoryError::Io {
                    path: PathBuf::from(path.as_ref()),
                    source: std::io::Error::other(e),
                })??;
        }
        Ok(())
    }

    /// Delete one file (compaction, retention). A file that is already gone
    /// is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The files of `table` that `filter` selects, in path order (table,
    /// date, symbol, partition, offsets). Anything in the lake that is not a
    /// lake file name ([`FileKey::parse`]) is ignored. Lists one directory per
    /// date, and one per date and symbol when the filter names a symbol.
    pub async fn files(&self, table: TableKind, filter: &FileFilter) -> Result<Vec<LakeFile>> {
        let root = Path::from(table.as_str());
        let date_dir = |day: i64| {
            let key = FileKey {
                table,
                day,
                symbol: Symbol::new("X").expect("valid"),
                partition: 0,
                first_offset: 0,
                last_offset: 0,
            };
            root.clone().join(format!("date={}", key.date()))
        };
        // A short range: its date directories directly; else list the dates.
        let dirs: Vec<Path> = match &filter.days {
            Some(r) if r.end().saturating_sub(*r.start()) < 64 => r.clone().map(date_dir).collect(),
            _ => {
                let dates = self.store.list_with_delimiter(Some(&root)).await?;
                dates
                    .common_prefixes
                    .into_iter()
                    .filter(|dir| {
                        dir.filename()
                            .and_then(|d| d.strip_prefix("date="))
                            .and_then(day_of_date)
                            .is_some_and(|day| {
                                filter.days.as_ref().is_none_or(|r| r.contains(&day))
                            })
                    })
                    .collect()
            }
        };
        let mut out = Vec::new();
        for dir in dirs {
            let prefix = match &filter.symbol {
                Some(s) => dir.clone().join(format!("symbol={s}")),
                None => dir.clone(),
            };
            let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
            out.extend(listed.into_iter().filter_map(|m| {
                let key = FileKey::parse(&m.location)?;
                Some(LakeFile { key, size: m.size })
            }));
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The highest log offset the lake holds for rows of `table`, UTC `day`,
    /// `symbol` and log `partition`, or `None` when it holds none. Because the
    /// archiver writes each such group's rows in log order, every row of the
    /// group at or below this offset is in the lake.
    pub async fn watermark(
        &self,
        table: TableKind,
        day: i64,
        symbol: &Symbol,
        partition: u32,
    ) -> Result<Option<u64>> {
        let files = self
            .files(
                table,
                &FileFilter {
                    symbol: Some(symbol.clone()),
                    days: Some(day..=day),
                },
            )
            .await?;
        Ok(files
            .iter()
            .filter(|f| f.key.partition == partition)
            .map(|f| f.key.last_offset)
            .max())
    }
}

/// The files a reader should read: `files` without those whose rows another
/// listed file of the same table, day, symbol and partition also holds (a
/// compacted file replaces the ones it was made from; until they are deleted
/// both are listed).
pub fn live_files(files: Vec<LakeFile>) -> Vec<LakeFile> {
    type Group = (TableKind, i64, Symbol, u32);
    let mut groups: BTreeMap<Group, Vec<LakeFile>> = BTreeMap::new();
    for f in files {
        let k = &f.key;
        groups
            .entry((k.table, k.day, k.symbol.clone(), k.partition))
            .or_default()
            .push(f);
    }
    let mut out = Vec::new();
    for (_, mut fs) in groups {
        // Widest first among equal starts, so a covering file comes first.
        fs.sort_by_key(|f| (f.key.first_offset, std::cmp::Reverse(f.key.last_offset)));
        let mut reach: Option<u64> = None;
        for f in fs {
            if reach.is_some_and(|r| f.key.last_offset <= r) {
                continue;
            }
            reach = Some(reach.map_or(f.key.last_offset, |r| r.max(f.key.last_offset)));
            out.push(f);
        }
    }
    out
}

/// fsync `root/rel` and each directory from its parent up to `root`.
fn sync_path(root: &std::path::Path, rel: &std::path::Path) -> Result<()> {
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| HistoryError::Io { path, source }
    };
    let file = root.join(rel);
    std::fs::File::open(&file)
        .and_then(|f| f.sync_all())
        .map_err(io(&file))?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io(d))?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(first: u64, last: u64, partition: u32) -> LakeFile {
        LakeFile {
            key: FileKey {
                table: TableKind::Trades,
                day: 19_000,
                symbol: Symbol::new("AAPL").unwrap(),
                partition,
                first_offset: first,
                last_offset: last,
            },
            size: 1,
        }
    }

    #[test]
    fn covered_files_are_not_live() {
        let files = vec![
            file(0, 9, 0),
            file(10, 19, 0),
            file(0, 19, 0), // compacted from the two above
            file(20, 29, 0),
            file(5, 7, 1), // another partition
        ];
        let live: Vec<_> = live_files(files)
            .into_iter()
            .map(|f| (f.key.partition, f.key.first_offset, f.key.last_offset))
            .collect();
        assert_eq!(live, vec![(0, 0, 19), (0, 20, 29), (1, 5, 7)]);
    }
}
