//! CSV answers of trades and quotes (`format=csv`, `Accept: text/csv`):
//! a header row, then one line per row with the fields of its JSON object —
//! decimals as the same exact text, times as integer nanoseconds.

use serde_json::Value;

/// The media type of a CSV answer.
pub const CSV: &str = "text/csv; charset=utf-8";

/// The columns of a trades answer, in order.
pub const TRADE_COLUMNS: &[&str] = &[
    "ts_exchange",
    "ts_received",
    "venue",
    "symbol",
    "price",
    "size",
    "side",
    "trade_id",
    "position",
];

/// The columns of a quotes answer, in order.
pub const QUOTE_COLUMNS: &[&str] = &[
    "ts_exchange",
    "ts_received",
    "venue",
    "symbol",
    "bid_price",
    "bid_size",
    "ask_price",
    "ask_size",
    "position",
];

/// `rows` (JSON objects) as CSV with `columns` (RFC 4180: CRLF-free `\n`
/// lines, fields quoted when they hold a comma, quote or line break). A
/// missing or null field is empty.
pub fn encode(columns: &[&str], rows: &[Value]) -> String {
    let mut out = String::new();
    line(&mut out, columns.iter().copied());
    for r in rows {
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match r.get(*c) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            })
            .collect();
        line(&mut out, fields.iter().map(String::as_str));
    }
    out
}

fn line<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if f.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_in_column_order_quoted_when_needed() {
        let rows = [
            json!({"ts_exchange": 1714564800000000001i64, "ts_received": 2, "venue": "coinbase",
                   "symbol": "BTC-USD", "price": "67000.5", "size": "0.001", "side": "buy",
                   "trade_id": "a,\"b\"", "position": "trades:1:7", "type": "trade"}),
            json!({"ts_exchange": 3, "ts_received": 4, "venue": "kraken", "symbol": "BTC-USD",
                   "price": "1", "size": "2", "side": "sell", "trade_id": null,
                   "position": "trades:0:0"}),
        ];
        assert_eq!(
            encode(TRADE_COLUMNS, &rows),
            "ts_exchange,ts_received,venue,symbol,price,size,side,trade_id,position\n\
             1714564800000000001,2,coinbase,BTC-USD,67000.5,0.001,buy,\"a,\"\"b\"\"\",trades:1:7\n\
             3,4,kraken,BTC-USD,1,2,sell,,trades:0:0\n"
        );
        assert_eq!(encode(QUOTE_COLUMNS, &[]).lines().count(), 1);
    }
}
