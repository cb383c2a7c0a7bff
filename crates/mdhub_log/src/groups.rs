//! Consumer group offsets: `<dir>/groups/<group>.offsets`, one small text
//! file per group, rewritten atomically (temp file, fsync, rename, directory
//! fsync) on every commit so that a committed offset survives power loss.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::partition::sync_dir;

const HEADER: &str = "mdhub_log consumer offsets v1";
const SUFFIX: &str = ".offsets";

type Offsets = BTreeMap<(String, u32), u64>;

#[derive(Debug)]
pub(crate) struct Groups {
    dir: PathBuf,
    /// One lock per group: commits of different groups fsync in parallel.
    groups: Mutex<HashMap<String, Arc<Mutex<Offsets>>>>,
}

/// Group and topic names share one rule: `[A-Za-z0-9._-]{1,249}`, not "." or "..".
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn parse(path: &Path, text: &str) -> Result<Offsets> {
    let corrupt = |line: usize, reason: &str| Error::Corrupt {
        path: path.to_owned(),
        position: line as u64,
        reason: format!("line {}: {reason}", line + 1),
    };
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(corrupt(0, "missing header line"));
    }
    let mut map = Offsets::new();
    for (i, line) in lines.enumerate().map(|(i, l)| (i + 1, l)) {
        let mut parts = line.split(' ');
        let (Some(topic), Some(p), Some(o), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt(i, "expected `<topic> <partition> <offset>`"));
        };
        let (Ok(p), Ok(o)) = (p.parse::<u32>(), o.parse::<u64>()) else {
            return Err(corrupt(i, "partition or offset is not a number"));
        };
        map.insert((topic.to_owned(), p), o);
    }
    Ok(map)
}

impl Groups {
    pub(crate) fn open(dir: PathBuf) -> Result<Groups> {
        fs::create_dir_all(&dir).map_err(Error::io("create groups directory", &dir))?;
        let mut groups = HashMap::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("list groups directory", &dir))? {
            let path = entry
                .map_err(Error::io("list groups directory", &dir))?
                .path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(group) = name.strip_suffix(SUFFIX).filter(|g| valid_name(g)) {
                let text =
                    fs::read_to_string(&path).map_err(Error::io("read group offsets", &path))?;
                groups.insert(group.to_owned(), Arc::new(Mutex::new(parse(&path, &text)?)));
            } else if name.ends_with(".tmp") {
                // A commit that crashed before its rename; the old file is intact.
                crate::partition::remove_if_exists(&path)?;
            }
        }
        Ok(Groups {
            dir,
            groups: Mutex::new(groups),
        })
    }

    fn group(&self, group: &str) -> Result<Arc<Mutex<Offsets>>> {
        if !valid_name(group) {
            return Err(Error::InvalidGroupName {
                name: group.to_owned(),
            });
        }
        Ok(Arc::clone(
            self.groups.lock().entry(group.to_owned()).or_default(),
        ))
    }

    pub(crate) fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<()> {
        let state = self.group(group)?;
        let mut offsets = state.lock();
        let mut updated = offsets.clone();
        updated.insert((topic.to_owned(), partition), next_offset);
        let mut text = String::with_capacity(64 + updated.len() * 40);
        text.push_str(HEADER);
        text.push('\n');
        for ((t, p), o) in &updated {
            text.push_str(&format!("{t} {p} {o}\n"));
        }
        let path = self.dir.join(format!("{group}{SUFFIX}"));
        let tmp = self.dir.join(format!("{group}{SUFFIX}.tmp"));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(Error::io("write group offsets", &tmp))?;
        fs::rename(&tmp, &path).map_err(Error::io("rename group offsets into", &path))?;
        sync_dir(&self.dir)?;
        *offsets = updated;
        Ok(())
    }

    pub(crate) fn committed(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> Result<Option<u64>> {
        if !valid_name(group) {
            return Err(Error::InvalidGroupName {
                name: group.to_owned(),
            });
        }
        let Some(state) = self.groups.lock().get(group).cloned() else {
            return Ok(None);
        };
        let offsets = state.lock();
        Ok(offsets.get(&(topic.to_owned(), partition)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("price-quotes"));
        assert!(valid_name("a.b_c-9"));
        assert!(!valid_name(""));
        assert!(!valid_name(".."));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(250)));
    }

    #[test]
    fn rejects_corrupt_file() {
        let p = Path::new("g.offsets");
        assert!(parse(p, "garbage").is_err());
        assert!(parse(p, &format!("{HEADER}\nt 1\n")).is_err());
        assert_eq!(
            parse(p, &format!("{HEADER}\nt 1 5\n"))
                .unwrap()
                .get(&("t".into(), 1)),
            Some(&5)
        );
    }
}
