//! The record format: encoding a `RecordIn` into the on-disk bytes and
//! decoding/validating them back into a zero-copy `RecordView`.
//!
//! Layout (little-endian), see the crate README for the full table:
//! `len u32 | crc32c u32 | offset u64 | timestamp i64 | key_len u16 |
//! headers_len u16 | value_len u32 | key | headers | value`, where `len`
//! counts the bytes after itself and the CRC covers everything after it.

use crate::error::{Error, Result};

/// Bytes before the key: len, crc, offset, timestamp, key_len, headers_len, value_len.
pub(crate) const HEADER_LEN: usize = 32;
/// Bytes covered by `len` when key, headers and value are all empty.
pub(crate) const MIN_LEN_FIELD: u32 = (HEADER_LEN - 4) as u32;
/// Largest record accepted on append (and trusted on read): 16 MiB.
pub(crate) const MAX_RECORD_BYTES: usize = 16 << 20;

/// A record to append. Borrowed, so building one costs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordIn<'a> {
    /// Event time in UTC nanoseconds (used by `offset_for_timestamp` and age retention).
    pub timestamp: i64,
    /// Partitioning key (may be empty); at most 65535 bytes.
    pub key: &'a [u8],
    /// Payload (may be empty).
    pub value: &'a [u8],
    /// Named binary headers; names at most 255 bytes, the encoded block at most 65535 bytes.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A record read from the log, borrowing the reader's buffer (valid only
/// inside the visitor call).
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// The record's offset in its partition.
    pub offset: u64,
    /// Event time in UTC nanoseconds, as appended.
    pub timestamp: i64,
    /// The key, as appended.
    pub key: &'a [u8],
    /// The value, as appended.
    pub value: &'a [u8],
    headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    /// The headers in append order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + use<'a> {
        HeaderIter { rest: self.headers }
    }

    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The encoded header block, as stored.
    pub fn raw_headers(&self) -> &'a [u8] {
        self.headers
    }
}

/// Iterates the encoded header block; stops quietly at malformed bytes (a
/// CRC-valid record can only be malformed if written by something else).
struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&name_len, rest) = self.rest.split_first()?;
        let name = rest.get(..name_len as usize)?;
        let rest = &rest[name_len as usize..];
        let value_len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let value = rest.get(2..2 + value_len)?;
        let name = std::str::from_utf8(name).ok()?;
        self.rest = &rest[2 + value_len..];
        Some((name, value))
    }
}

fn headers_len(headers: &[(&str, &[u8])]) -> Result<usize> {
    let mut len = 0usize;
    for (name, value) in headers {
        if name.len() > u8::MAX as usize {
            let shown: String = name.chars().take(40).collect();
            return Err(Error::HeaderNameTooLong {
                name: shown,
                len: name.len(),
            });
        }
        if value.len() > u16::MAX as usize {
            return Err(Error::RecordTooLarge {
                field: "header value",
                len: value.len(),
                max: u16::MAX as usize,
            });
        }
        len += 1 + name.len() + 2 + value.len();
    }
    if len > u16::MAX as usize {
        return Err(Error::RecordTooLarge {
            field: "headers",
            len,
            max: u16::MAX as usize,
        });
    }
    Ok(len)
}

/// Validates `rec` and returns its encoded size and header block size.
pub(crate) fn encoded_len(rec: &RecordIn<'_>) -> Result<(usize, usize)> {
    if rec.key.len() > u16::MAX as usize {
        return Err(Error::RecordTooLarge {
            field: "key",
            len: rec.key.len(),
            max: u16::MAX as usize,
        });
    }
    let hlen = headers_len(rec.headers)?;
    let total = HEADER_LEN + rec.key.len() + hlen + rec.value.len();
    if total > MAX_RECORD_BYTES {
        return Err(Error::RecordTooLarge {
            field: "record",
            len: total,
            max: MAX_RECORD_BYTES,
        });
    }
    Ok((total, hlen))
}

/// Appends the encoded record to `out`. `sizes` comes from [`encoded_len`].
pub(crate) fn encode(out: &mut Vec<u8>, offset: u64, rec: &RecordIn<'_>, sizes: (usize, usize)) {
    let (total, hlen) = sizes;
    let start = out.len();
    out.reserve(total);
    out.extend_from_slice(&((total - 4) as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]); // CRC, patched below
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&rec.timestamp.to_le_bytes());
    out.extend_from_slice(&(rec.key.len() as u16).to_le_bytes());
    out.extend_from_slice(&(hlen as u16).to_le_bytes());
    out.extend_from_slice(&(rec.value.len() as u32).to_le_bytes());
    out.extend_from_slice(rec.key);
    for (name, value) in rec.headers {
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
    }
    out.extend_from_slice(rec.value);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    Length(u32),
    Crc,
    FieldLengths,
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invalid::Length(n) => write!(f, "record length {n} is zero or absurd"),
            Invalid::Crc => f.write_str("record CRC mismatch"),
            Invalid::FieldLengths => {
                f.write_str("key/header/value lengths disagree with record length")
            }
        }
    }
}

/// Reads the total size (length field + 4) of the record starting at `buf`,
/// or `Ok(None)` if fewer than 4 bytes are available.
#[inline]
pub(crate) fn peek_size(buf: &[u8]) -> Result<Option<usize>, Invalid> {
    let Some(b) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    if len < MIN_LEN_FIELD || len as usize + 4 > MAX_RECORD_BYTES {
        return Err(Invalid::Length(len));
    }
    Ok(Some(len as usize + 4))
}

#[inline]
fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes and CRC-checks the record at the start of `buf`. `Ok(None)` means
/// the record continues past the end of `buf` (need more bytes).
#[inline]
pub(crate) fn decode(buf: &[u8]) -> Result<Option<(RecordView<'_>, usize)>, Invalid> {
    let Some(size) = peek_size(buf)? else {
        return Ok(None);
    };
    let Some(rec) = buf.get(..size) else {
        return Ok(None);
    };
    let crc = u32::from_le_bytes([rec[4], rec[5], rec[6], rec[7]]);
    if crc32c::crc32c(&rec[8..]) != crc {
        return Err(Invalid::Crc);
    }
    let key_len = u16::from_le_bytes([rec[24], rec[25]]) as usize;
    let hdr_len = u16::from_le_bytes([rec[26], rec[27]]) as usize;
    let val_len = u32::from_le_bytes([rec[28], rec[29], rec[30], rec[31]]) as usize;
    if HEADER_LEN + key_len + hdr_len + val_len != size {
        return Err(Invalid::FieldLengths);
    }
    let key_end = HEADER_LEN + key_len;
    let hdr_end = key_end + hdr_len;
    let view = RecordView {
        offset: le_u64(rec, 8),
        timestamp: le_u64(rec, 16) as i64,
        key: &rec[HEADER_LEN..key_end],
        headers: &rec[key_end..hdr_end],
        value: &rec[hdr_end..],
    };
    Ok(Some((view, size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(offset: u64, rec: &RecordIn<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, offset, rec, encoded_len(rec).unwrap());
        out
    }

    #[test]
    fn round_trip_with_headers() {
        let headers: &[(&str, &[u8])] = &[("enc", b"json"), ("", b""), ("x", &[0, 1, 2])];
        let rec = RecordIn {
            timestamp: -5,
            key: b"AAPL",
            value: b"hello",
            headers,
        };
        let bytes = enc(42, &rec);
        assert_eq!(bytes.len(), encoded_len(&rec).unwrap().0);
        let (view, n) = decode(&bytes).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(
            (view.offset, view.timestamp, view.key, view.value),
            (42, -5, &b"AAPL"[..], &b"hello"[..])
        );
        let hs: Vec<_> = view.headers().collect();
        assert_eq!(hs, headers.to_vec());
        assert_eq!(view.header("x"), Some(&[0u8, 1, 2][..]));
        assert_eq!(view.header("nope"), None);
    }

    #[test]
    fn empty_record_and_partial_input() {
        let bytes = enc(0, &RecordIn::default());
        assert_eq!(bytes.len(), HEADER_LEN);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).unwrap().is_none(), "cut {cut}");
        }
    }

    #[test]
    fn detects_corruption_without_panicking() {
        let bytes = enc(
            7,
            &RecordIn {
                timestamp: 1,
                key: b"k",
                value: b"vvvv",
                headers: &[],
            },
        );
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(Some((v, _))) = decode(&b) {
                    panic!("flip at {i}/{bit} accepted: {v:?}");
                }
            }
        }
        assert!(matches!(decode(&[0u8; 40]), Err(Invalid::Length(0))));
    }

    #[test]
    fn rejects_oversized_fields() {
        let big = vec![0u8; 70_000];
        let rec = RecordIn {
            key: &big,
            ..RecordIn::default()
        };
        assert!(matches!(
            encoded_len(&rec),
            Err(Error::RecordTooLarge { field: "key", .. })
        ));
        let long = "n".repeat(256);
        let headers: &[(&str, &[u8])] = &[(&long, b"")];
        let rec = RecordIn {
            headers,
            ..RecordIn::default()
        };
        assert!(matches!(
            encoded_len(&rec),
            Err(Error::HeaderNameTooLong { .. })
        ));
    }
}
