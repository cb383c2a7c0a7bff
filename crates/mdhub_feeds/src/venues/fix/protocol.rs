//! FIX 4.4 tag=value framing as the decoder needs it: a message split into
//! its fields in order (SOH- or `|`-separated), the tags mdhub reads, and FIX
//! `UTCTimestamp`s as [`Timestamp`]s. No checksum or body-length check here:
//! on the live path the session layer (hotfix) has verified the message
//! before it is decoded; `mdhub normalize` takes lines a person pasted.

use mdhub_types::Timestamp;

use crate::venues::DecodeError;

/// MsgType(35).
pub(crate) const MSG_TYPE: u32 = 35;
/// SendingTime(52).
pub(crate) const SENDING_TIME: u32 = 52;
/// Side(54): on a trade entry, the aggressor's side where a venue sends it.
pub(crate) const SIDE: u32 = 54;
/// Symbol(55).
pub(crate) const SYMBOL: u32 = 55;
/// Text(58).
pub(crate) const TEXT: u32 = 58;
/// MDReqID(262).
pub(crate) const MD_REQ_ID: u32 = 262;
/// NoMDEntries(268).
pub(crate) const NO_MD_ENTRIES: u32 = 268;
/// MDEntryType(269): 0 bid, 1 offer, 2 trade.
pub(crate) const MD_ENTRY_TYPE: u32 = 269;
/// MDEntryPx(270).
pub(crate) const MD_ENTRY_PX: u32 = 270;
/// MDEntrySize(271).
pub(crate) const MD_ENTRY_SIZE: u32 = 271;
/// MDEntryDate(272), `YYYYMMDD`.
pub(crate) const MD_ENTRY_DATE: u32 = 272;
/// MDEntryTime(273), `HH:MM:SS[.sss]`.
pub(crate) const MD_ENTRY_TIME: u32 = 273;
/// MDEntryID(278).
pub(crate) const MD_ENTRY_ID: u32 = 278;
/// MDUpdateAction(279): 0 new, 1 change, 2 delete.
pub(crate) const MD_UPDATE_ACTION: u32 = 279;
/// MDReqRejReason(281).
pub(crate) const MD_REQ_REJ_REASON: u32 = 281;
/// TradeID(1003).
pub(crate) const TRADE_ID: u32 = 1003;
/// AggressorSide(2446, FIX 5.0 SP2 EP, sent by some 4.4 venues).
pub(crate) const AGGRESSOR_SIDE: u32 = 2446;

/// A message's fields in wire order.
pub(crate) type Fields<'a> = Vec<(u32, &'a str)>;

/// Split a message into `(tag, value)` pairs. The separator is SOH when the
/// frame holds one, else `|` (how FIX is written in logs and docs). Trailing
/// line breaks and a trailing separator are ignored.
pub(crate) fn split(frame: &[u8]) -> Result<Fields<'_>, DecodeError> {
    let text = crate::venues::text(frame)?;
    let sep = if frame.contains(&0x01) { '\u{1}' } else { '|' };
    let text = text.trim_end_matches(['\r', '\n', ' ']);
    let text = text.strip_suffix(sep).unwrap_or(text);
    if text.is_empty() {
        return Err(DecodeError::Malformed("empty message".into()));
    }
    let mut fields = Vec::with_capacity(32);
    for field in text.split(sep) {
        let (tag, value) = field
            .split_once('=')
            .ok_or_else(|| DecodeError::Malformed(format!("field without '=': {field:?}")))?;
        let tag = tag
            .parse::<u32>()
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| DecodeError::Malformed(format!("bad tag {tag:?}")))?;
        fields.push((tag, value));
    }
    if fields.first().map(|f| f.0) != Some(8) {
        return Err(DecodeError::Malformed(
            "a FIX message starts with BeginString(8)".into(),
        ));
    }
    Ok(fields)
}

/// The first value of `tag` before the repeating group (header and body
/// fields that precede NoMDEntries(268)).
pub(crate) fn header_field<'a>(fields: &Fields<'a>, tag: u32) -> Option<&'a str> {
    fields
        .iter()
        .take_while(|(t, _)| *t != NO_MD_ENTRIES)
        .find(|(t, _)| *t == tag)
        .map(|(_, v)| *v)
}

/// A FIX `UTCTimestamp` (`YYYYMMDD-HH:MM:SS[.fraction]`, fraction up to nine
/// digits, kept exactly).
pub(crate) fn utc_timestamp(field: &'static str, text: &str) -> Result<Timestamp, DecodeError> {
    let (date, time) = text.split_once('-').ok_or_else(|| bad_time(field, text))?;
    date_time(field, date, time)
}

/// A `UTCDateOnly` (`YYYYMMDD`) and a `UTCTimeOnly` (`HH:MM:SS[.fraction]`).
pub(crate) fn date_time(
    field: &'static str,
    date: &str,
    time: &str,
) -> Result<Timestamp, DecodeError> {
    let d = date.as_bytes();
    if d.len() != 8 || !d.iter().all(u8::is_ascii_digit) || time.len() < 8 {
        return Err(bad_time(field, &format!("{date}-{time}")));
    }
    let rfc = format!("{}-{}-{}T{time}Z", &date[0..4], &date[4..6], &date[6..8]);
    Timestamp::parse_rfc3339(&rfc).map_err(|_| bad_time(field, &format!("{date}-{time}")))
}

fn bad_time(field: &'static str, text: &str) -> DecodeError {
    DecodeError::BadNumber {
        field,
        reason: format!("not a FIX UTC timestamp (YYYYMMDD-HH:MM:SS.sss): {text:?}"),
    }
}

/// MsgSeqNum(34) of a raw SOH-separated message, without splitting it all
/// (the feed stamps each message's receipt time by sequence number).
pub(crate) fn seq_num(raw: &[u8]) -> Option<u64> {
    let start = raw.windows(4).position(|w| w == b"\x0134=")? + 4;
    let rest = &raw[start..];
    let end = rest.iter().position(|b| *b == 0x01).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}
