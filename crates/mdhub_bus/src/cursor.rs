//! Pieces both implementations share: per-partition read cursors and checks.

use std::collections::BTreeMap;

use mdhub_types::{Position, Topic};

use crate::{Error, Result};

/// Index of a topic in `[quotes, trades]` arrays.
pub(crate) fn idx(t: Topic) -> usize {
    match t {
        Topic::Quotes => 0,
        Topic::Trades => 1,
        Topic::Status => 2,
    }
}

/// `NoSuchPartition` unless `partition` exists in `topic`.
pub(crate) fn check_partition(partitions: [u32; 3], topic: Topic, partition: u32) -> Result<()> {
    let partitions = partitions[idx(topic)];
    if partition >= partitions {
        return Err(Error::NoSuchPartition {
            topic,
            partition,
            partitions,
        });
    }
    Ok(())
}

/// `offset` if it lies within `[start, end]`, else `OffsetOutOfRange`.
pub(crate) fn in_range(
    topic: Topic,
    partition: u32,
    offset: u64,
    start: u64,
    end: u64,
) -> Result<u64> {
    if offset < start || offset > end {
        return Err(Error::OffsetOutOfRange {
            topic,
            partition,
            requested: offset,
            start,
            end,
        });
    }
    Ok(offset)
}

/// The next offset a subscription reads in one partition.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor {
    pub(crate) topic: Topic,
    pub(crate) partition: u32,
    pub(crate) next: u64,
}

/// Set (or add) the cursor of one partition.
pub(crate) fn set_cursor(cursors: &mut Vec<Cursor>, topic: Topic, partition: u32, next: u64) {
    match cursors
        .iter_mut()
        .find(|c| c.topic == topic && c.partition == partition)
    {
        Some(c) => c.next = next,
        None => cursors.push(Cursor {
            topic,
            partition,
            next,
        }),
    }
}

/// The cursors as positions.
pub(crate) fn positions(cursors: &[Cursor]) -> Vec<Position> {
    cursors
        .iter()
        .map(|c| Position {
            topic: c.topic,
            partition: c.partition,
            offset: c.next,
        })
        .collect()
}

/// For a commit: the highest position per partition.
pub(crate) fn highest_per_partition(positions: &[Position]) -> BTreeMap<(Topic, u32), u64> {
    let mut upto: BTreeMap<(Topic, u32), u64> = BTreeMap::new();
    for p in positions {
        let e = upto.entry((p.topic, p.partition)).or_insert(p.offset);
        *e = (*e).max(p.offset);
    }
    upto
}
