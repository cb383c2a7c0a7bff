//! Avro's Parsing Canonical Form and CRC-64-AVRO (Rabin) fingerprint, per the
//! Avro specification ("Parsing Canonical Form for Schemas", "Schema
//! Fingerprints").
//!
//! Written here because the `apache-avro` crate's `canonical_form()` keeps
//! `precision`/`scale` and wraps primitives in objects, which gives a
//! fingerprint Java, fastavro and Confluent readers do not recognise. The test
//! suite checks ours against fastavro.

use serde_json::Value;

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of a schema given as JSON text.
pub(crate) fn canonical_form(schema: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(schema).map_err(|e| e.to_string())?;
    let mut out = String::new();
    write(&v, "", &mut out)?;
    Ok(out)
}

/// The spec's 64-bit Rabin fingerprint of the canonical form, little-endian,
/// as the single-object header carries it.
pub(crate) fn fingerprint(schema: &str) -> Result<[u8; 8], String> {
    Ok(rabin(canonical_form(schema)?.as_bytes()).to_le_bytes())
}

fn rabin(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    let table: [u64; 256] = std::array::from_fn(|i| {
        let mut fp = i as u64;
        for _ in 0..8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
        }
        fp
    });
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ table[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn fullname(name: &str, namespace: &str) -> String {
    if name.contains('.') || namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}.{name}")
    }
}

fn write(v: &Value, ns: &str, out: &mut String) -> Result<(), String> {
    match v {
        Value::String(s) => {
            let name = if PRIMITIVES.contains(&s.as_str()) {
                s.clone()
            } else {
                fullname(s, ns)
            };
            out.push_str(&quoted(&name));
        }
        Value::Array(items) => {
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(it, ns, out)?;
            }
            out.push(']');
        }
        Value::Object(o) => {
            let ty = o.get("type").ok_or("schema object without \"type\"")?;
            let ty_str = ty.as_str().unwrap_or("");
            if !ty.is_string() || PRIMITIVES.contains(&ty_str) {
                // A primitive with attributes (logicalType, precision, …) or a
                // nested type: only the type itself is canonical.
                return write(ty, ns, out);
            }
            match ty_str {
                "record" | "error" | "enum" | "fixed" => {
                    let name = o
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or("named type without name")?;
                    let own_ns = o.get("namespace").and_then(Value::as_str).unwrap_or(ns);
                    let full = fullname(name, own_ns);
                    let inner_ns = full.rsplit_once('.').map(|(n, _)| n).unwrap_or("");
                    out.push_str(&format!(
                        "{{\"name\":{},\"type\":{}",
                        quoted(&full),
                        quoted(ty_str)
                    ));
                    if let Some(fields) = o.get("fields").and_then(Value::as_array) {
                        out.push_str(",\"fields\":[");
                        for (i, f) in fields.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            let fname = f
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or("field without name")?;
                            out.push_str(&format!("{{\"name\":{},\"type\":", quoted(fname)));
                            write(f.get("type").ok_or("field without type")?, inner_ns, out)?;
                            out.push('}');
                        }
                        out.push(']');
                    }
                    if let Some(symbols) = o.get("symbols") {
                        out.push_str(&format!(",\"symbols\":{symbols}"));
                    }
                    if let Some(size) = o.get("size") {
                        out.push_str(&format!(",\"size\":{size}"));
                    }
                    out.push('}');
                }
                "array" => {
                    out.push_str("{\"type\":\"array\",\"items\":");
                    write(o.get("items").ok_or("array without items")?, ns, out)?;
                    out.push('}');
                }
                "map" => {
                    out.push_str("{\"type\":\"map\",\"values\":");
                    write(o.get("values").ok_or("map without values")?, ns, out)?;
                    out.push('}');
                }
                other => out.push_str(&quoted(&fullname(other, ns))),
            }
        }
        other => return Err(format!("not a schema: {other}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples() {
        // Fingerprints of primitive schemas from the Avro test suite.
        assert_eq!(rabin(b"\"int\""), 0x7275_d51a_3f39_5c8f);
        assert_eq!(
            canonical_form(r#"{"type":"long","logicalType":"timestamp-nanos"}"#).unwrap(),
            "\"long\""
        );
        assert_eq!(
            canonical_form(r#"{"type":"record","name":"R","namespace":"a.b","doc":"x","fields":[{"name":"f","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}"#).unwrap(),
            r#"{"name":"a.b.R","type":"record","fields":[{"name":"f","type":{"name":"a.b.E","type":"enum","symbols":["A","B"]}}]}"#
        );
    }
}
