//! A scanner for the one frame that dominates Binance's volume: a `@trade`
//! event exactly as Binance writes it — compact JSON, keys in the documented
//! order, no escapes:
//!
//! ```json
//! {"stream":"btcusdt@trade","data":{"e":"trade","E":1732615200123,"s":"BTCUSDT","t":4213387917,
//!  "p":"91234.56000000","q":"0.00012000","T":1732615200122,"m":false,"M":true}}
//! ```
//!
//! (also without the combined-stream wrapper). It reads the fields in one
//! forward pass without building the general message struct. Anything else —
//! another key order, whitespace, an escape, an extra or missing field, a
//! number out of range, trailing bytes — returns `None` and the frame takes
//! the general serde path, so the scanner only ever agrees with it (a test
//! holds them to identical output).

/// The fields of a trade frame, borrowed from its text.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawTrade<'a> {
    /// `E`: event time.
    pub(super) event_time: i64,
    /// `s`: the venue symbol.
    pub(super) symbol: &'a str,
    /// `t`: trade id.
    pub(super) trade_id: u64,
    /// `p`, with its quotes.
    pub(super) price: &'a str,
    /// `q`, with its quotes.
    pub(super) size: &'a str,
    /// `T`: trade time.
    pub(super) trade_time: i64,
    /// `m`: the buyer was the maker.
    pub(super) buyer_is_maker: bool,
}

struct Cursor<'a> {
    s: &'a [u8],
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn lit(&mut self, l: &[u8]) -> Option<()> {
        let end = self.at.checked_add(l.len())?;
        (self.s.get(self.at..end)? == l).then(|| self.at = end)
    }

    /// A string without escapes: its text with the quotes.
    fn quoted(&mut self) -> Option<&'a str> {
        let start = self.at;
        (*self.s.get(start)? == b'"').then_some(())?;
        let len = self.s.get(start + 1..)?.iter().position(|&b| b == b'"')?;
        let body = self.s.get(start + 1..start + 1 + len)?;
        if body.iter().any(|&b| b == b'\\' || b < 0x20) {
            return None;
        }
        self.at = start + len + 2;
        self.text.get(start..self.at)
    }

    /// A non-negative integer of at most 18 digits (no sign, no fraction).
    fn uint(&mut self) -> Option<u64> {
        let digits = self
            .s
            .get(self.at..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 18 || (digits > 1 && self.s[self.at] == b'0') {
            return None;
        }
        let mut v = 0u64;
        for &b in &self.s[self.at..self.at + digits] {
            v = v * 10 + u64::from(b - b'0');
        }
        self.at += digits;
        // A fraction or exponent is not an integer field.
        matches!(self.s.get(self.at), Some(b',' | b'}')).then_some(v)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.lit(b"true").is_some() {
            Some(true)
        } else {
            self.lit(b"false").map(|()| false)
        }
    }
}

/// The trade of a `@trade` frame in Binance's exact layout, or `None`.
pub(super) fn trade(text: &str) -> Option<RawTrade<'_>> {
    let mut c = Cursor {
        s: text.as_bytes(),
        text,
        at: 0,
    };
    let combined = c.lit(b"{\"stream\":").is_some();
    if combined {
        c.quoted()?;
        c.lit(b",\"data\":")?;
    }
    c.lit(b"{\"e\":\"trade\",\"E\":")?;
    let event_time = i64::try_from(c.uint()?).ok()?;
    c.lit(b",\"s\":")?;
    let symbol = c.quoted()?;
    c.lit(b",\"t\":")?;
    let trade_id = c.uint()?;
    c.lit(b",\"p\":")?;
    let price = c.quoted()?;
    c.lit(b",\"q\":")?;
    let size = c.quoted()?;
    c.lit(b",\"T\":")?;
    let trade_time = i64::try_from(c.uint()?).ok()?;
    c.lit(b",\"m\":")?;
    let buyer_is_maker = c.boolean()?;
    c.lit(b",\"M\":")?;
    c.boolean()?;
    c.lit(b"}")?;
    if combined {
        c.lit(b"}")?;
    }
    (c.at == c.s.len()).then(|| RawTrade {
        event_time,
        symbol: &symbol[1..symbol.len() - 1],
        trade_id,
        price,
        size,
        trade_time,
        buyer_is_maker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1732615200123,"s":"BTCUSDT","t":4213387917,"p":"91234.56000000","q":"0.00012000","T":1732615200122,"m":false,"M":true}}"#;

    #[test]
    fn reads_the_documented_layout_and_nothing_else() {
        let t = trade(FRAME).expect("the documented layout");
        assert_eq!(
            t,
            RawTrade {
                event_time: 1_732_615_200_123,
                symbol: "BTCUSDT",
                trade_id: 4_213_387_917,
                price: "\"91234.56000000\"",
                size: "\"0.00012000\"",
                trade_time: 1_732_615_200_122,
                buyer_is_maker: false,
            }
        );
        let raw = &FRAME[FRAME.find("{\"e\"").unwrap()..FRAME.len() - 1];
        assert!(raw.starts_with("{\"e\""), "{raw}");
        assert_eq!(trade(raw).map(|t| t.trade_id), Some(4_213_387_917));
        for bad in [
            FRAME.replace("\"m\":false", "\"m\":\"no\""),
            FRAME.replace("91234.56", "91234\\u002e56"),
            FRAME.replace(",\"M\":true", ""),
            FRAME.replace("\"t\":4213387917", "\"t\":04213387917"),
            FRAME.replace("\"E\":1732615200123", "\"E\":1732615200123.5"),
            FRAME.replace("\"E\":1732615200123", "\"E\":-1"),
            FRAME.replace("{\"e\"", "{ \"e\""),
            format!("{FRAME} "),
            FRAME[..FRAME.len() - 1].to_string(),
            "{\"stream\":\"x".to_string(),
            String::new(),
        ] {
            assert_eq!(trade(&bad), None, "{bad}");
        }
    }
}
