//! Splitting a batch of log records into lake files.

use std::collections::BTreeMap;

use mdhub_types::{Position, Positioned, Symbol, Timestamp};

use crate::path::day_of;
use crate::{FileKey, HistoryError, Result, TableKind};

/// The rows of one lake file and its key.
#[derive(Debug, Clone)]
pub struct FileBatch<'a> {
    /// Names the file.
    pub key: FileKey,
    /// The file's rows, in the order given (the encoder sorts them).
    pub rows: Vec<&'a Positioned>,
}

/// Split `rows` of `table` into one [`FileBatch`] per UTC date of
/// `ts_exchange`, symbol and log partition, ordered by their keys.
///
/// Every row must be of `table` (from its topic, not a feed-status event),
/// else [`HistoryError::NotLakeRow`]. The file names depend only on the rows,
/// so planning the same records again after a crash names the same files.
pub fn plan_files(table: TableKind, rows: &[Positioned]) -> Result<Vec<FileBatch<'_>>> {
    // (rows, first, last, a ts_exchange of the day)
    type Group<'a> = (Vec<&'a Positioned>, Position, Position, Timestamp);
    let mut groups: BTreeMap<(i64, Symbol, u32), Group<'_>> = BTreeMap::new();
    for row in rows {
        let p = row.position;
        if TableKind::of(&row.event) != Some(table) || p.topic != table.topic() {
            return Err(HistoryError::NotLakeRow { position: p, table });
        }
        let ts = row.event.ts_exchange();
        let g = groups
            .entry((day_of(ts), row.event.symbol().clone(), p.partition))
            .or_insert_with(|| (Vec::new(), p, p, ts));
        g.0.push(row);
        g.1 = g.1.min(p);
        g.2 = g.2.max(p);
    }
    groups
        .into_iter()
        .map(|((_, symbol, _), (rows, first, last, ts))| {
            Ok(FileBatch {
                key: FileKey::new(table, ts, symbol, first, last)?,
                rows,
            })
        })
        .collect()
}
