//! The `cursor=` of a paged trades or quotes answer.
//!
//! Range answers are ordered by `ts_exchange`, then log partition, then log
//! offset — a total order, since `(partition, offset)` identifies a row of
//! a table. A cursor is the key of the last row a page returned; the next
//! page starts strictly after it, so paging returns every row once.
//!
//! Clients treat the token as opaque; it is `<ts>.<partition>.<offset>`
//! (decimal), so it needs no escaping in a URL.

use mdhub_types::Timestamp;

/// Longest token accepted: three decimal integers and two dots.
const MAX_TOKEN: usize = 64;

/// Where a page of a range answer resumes: strictly after this row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// The row's `ts_exchange`.
    pub ts: Timestamp,
    /// The row's log partition.
    pub partition: u32,
    /// The row's log offset.
    pub offset: u64,
}

/// Why a `cursor=` was refused (a 400 `bad_cursor`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    /// Not a token this server hands out.
    #[error("cursor {0:?} is malformed: pass the \"next\" of the previous page as it is")]
    Malformed(String),
    /// A token of another range (its row lies outside `[from, to)`).
    #[error("cursor {0:?} lies outside this request's range: page with the same from and to")]
    OutOfRange(String),
    /// Given where there is nothing to page (bars, `at`).
    #[error("cursor= pages trades and quotes over a range only")]
    NotPaged,
}

impl Cursor {
    /// The cursor that resumes after the row at `ts`, `partition`, `offset`.
    pub const fn after(ts: Timestamp, partition: u32, offset: u64) -> Cursor {
        Cursor {
            ts,
            partition,
            offset,
        }
    }

    /// The token handed to clients.
    pub fn token(&self) -> String {
        format!("{}.{}.{}", self.ts.as_nanos(), self.partition, self.offset)
    }

    /// The cursor of a token from [`Cursor::token`].
    pub fn decode(token: &str) -> Result<Cursor, CursorError> {
        let bad = || CursorError::Malformed(token.chars().take(MAX_TOKEN).collect());
        if token.len() > MAX_TOKEN {
            return Err(bad());
        }
        let mut parts = token.split('.');
        let (Some(ts), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // Only the canonical digits: one token per row.
        let canonical = |s: &str, neg: bool| {
            let digits = if neg {
                s.strip_prefix('-').unwrap_or(s)
            } else {
                s
            };
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && (digits == "0" || !digits.starts_with('0'))
        };
        if !canonical(ts, true) || !canonical(partition, false) || !canonical(offset, false) {
            return Err(bad());
        }
        Ok(Cursor {
            ts: Timestamp::from_nanos(ts.parse().map_err(|_| bad())?),
            partition: partition.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }

    /// `self` if its row lies in `[from, to)`, as every row of that range's
    /// pages does.
    pub fn within(self, from: Timestamp, to: Timestamp) -> Result<Cursor, CursorError> {
        if from <= self.ts && self.ts < to {
            Ok(self)
        } else {
            Err(CursorError::OutOfRange(self.token()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_order_like_rows() {
        for c in [
            Cursor::after(Timestamp::from_nanos(1_714_564_800_000_000_123), 3, 17),
            Cursor::after(Timestamp::from_nanos(i64::MIN), u32::MAX, u64::MAX),
            Cursor::after(Timestamp::from_nanos(0), 0, 0),
            Cursor::after(Timestamp::from_nanos(-5), 2_147_483_648, 1),
        ] {
            assert_eq!(Cursor::decode(&c.token()), Ok(c), "{}", c.token());
            assert!(c.token().len() <= MAX_TOKEN);
        }
        // The order of rows: time, then partition, then offset.
        let t = Timestamp::from_nanos(10);
        assert!(Cursor::after(t, 0, 9) < Cursor::after(t, 1, 0));
        assert!(Cursor::after(t, 1, 0) < Cursor::after(t, 1, 1));
        assert!(Cursor::after(t, 9, 9) < Cursor::after(Timestamp::from_nanos(11), 0, 0));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let long = "9".repeat(100);
        for token in [
            "",
            "1.2",
            "1.2.3.4",
            "a.b.c",
            "1..3",
            "+1.2.3",
            "1.-2.3",
            "1.2.-3",
            "01.2.3",
            "1.2.3 ",
            "1.4294967296.3",
            "1.2.18446744073709551616",
            "9223372036854775808.0.0",
            "eyJ0cyI6MX0",
            long.as_str(),
        ] {
            let e = Cursor::decode(token).unwrap_err();
            assert!(matches!(e, CursorError::Malformed(_)), "{token:?}: {e}");
            assert!(e.to_string().len() < 200, "{e}");
        }
        let c = Cursor::after(Timestamp::from_nanos(10), 0, 0);
        let (from, to) = (Timestamp::from_nanos(10), Timestamp::from_nanos(20));
        assert_eq!(c.within(from, to), Ok(c));
        assert!(c.within(Timestamp::from_nanos(11), to).is_err());
        assert!(c.within(Timestamp::from_nanos(0), from).is_err());
    }
}
