//! Topics on disk: `<dir>/topics/<topic>/topic.meta` records the partition
//! count; `<dir>/topics/<topic>/<partition>/` holds each partition's segments.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::config::MAX_PARTITIONS;
use crate::error::{Error, Result};
use crate::groups::valid_name;
use crate::meta::{EpochGuard, write_atomic};
use crate::notify::Notifier;
use crate::partition::{Partition, Settings, sync_dir};

/// A topic's partitions, index = partition number.
#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    pub(crate) partitions: Vec<Arc<Partition>>,
}

pub(crate) fn check_name(topic: &str) -> Result<()> {
    if valid_name(topic) {
        Ok(())
    } else {
        Err(Error::InvalidTopicName {
            name: topic.to_owned(),
        })
    }
}

fn read_count(topic_dir: &Path) -> Result<Option<u32>> {
    let path = topic_dir.join("topic.meta");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path)(e)),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("partitions="))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=MAX_PARTITIONS).contains(n))
        .map(Some)
        .ok_or_else(|| Error::Corrupt {
            path,
            position: 0,
            reason: "missing or invalid `partitions=` line".into(),
        })
}

/// Opens the partitions of a topic directory (creating the directory, the
/// partitions and `topic.meta` when `create` is `Some(count)`).
pub(crate) fn open_topic(
    topics_dir: &Path,
    name: &str,
    create: Option<u32>,
    settings: Settings,
    notifier: &Arc<Notifier>,
    mut guard: Option<&mut EpochGuard>,
) -> Result<Option<Topic>> {
    let dir = topics_dir.join(name);
    let count = match (read_count(&dir)?, create) {
        (Some(n), _) => n,
        (None, Some(n)) => n,
        (None, None) => {
            // A creation that crashed before writing topic.meta: adopt the
            // partition directories that exist, if they are 0..n.
            let mut ids: Vec<u32> = fs::read_dir(&dir)
                .map_err(Error::io("list topic directory", &dir))?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect();
            ids.sort_unstable();
            if ids.is_empty() || ids.iter().enumerate().any(|(i, &id)| id as usize != i) {
                tracing::warn!(topic_dir = %dir.display(), "ignoring topic directory without topic.meta");
                return Ok(None);
            }
            tracing::warn!(
                topic = name,
                partitions = ids.len(),
                "topic.meta missing; adopting partition directories"
            );
            ids.len() as u32
        }
    };
    fs::create_dir_all(&dir).map_err(Error::io("create topic directory", &dir))?;
    let mut before_loss = |why: &str| match guard.as_deref_mut() {
        Some(g) => g.before_loss(why),
        // A topic created while the log runs: its epoch cannot change now.
        None => Ok(()),
    };
    let partitions = (0..count)
        .map(|id| {
            Partition::open(
                name,
                id,
                dir.join(id.to_string()),
                settings,
                Arc::clone(notifier),
                &mut before_loss,
            )
            .map(Arc::new)
        })
        .collect::<Result<Vec<_>>>()?;
    if read_count(&dir)?.is_none() {
        write_atomic(&dir.join("topic.meta"), &format!("partitions={count}\n"))?;
        sync_dir(topics_dir)?;
    }
    Ok(Some(Topic {
        name: name.to_owned(),
        partitions,
    }))
}

/// Opens every topic under `topics_dir`.
pub(crate) fn open_all(
    topics_dir: &Path,
    settings: Settings,
    notifier: &Arc<Notifier>,
    guard: &mut EpochGuard,
) -> Result<Vec<Topic>> {
    fs::create_dir_all(topics_dir).map_err(Error::io("create topics directory", topics_dir))?;
    let mut topics = Vec::new();
    for entry in fs::read_dir(topics_dir).map_err(Error::io("list topics directory", topics_dir))? {
        let entry = entry.map_err(Error::io("list topics directory", topics_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !valid_name(&name) {
            tracing::warn!(path = %entry.path().display(), "ignoring unexpected entry in topics directory");
            continue;
        }
        if let Some(t) = open_topic(topics_dir, &name, None, settings, notifier, Some(guard))? {
            topics.push(t);
        }
    }
    Ok(topics)
}
