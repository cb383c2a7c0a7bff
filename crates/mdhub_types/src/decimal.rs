//! Exact decimal numbers for prices and sizes.
//!
//! A [`Decimal`] is a signed 128-bit integer mantissa and a base-10 scale
//! (`value = mantissa × 10^-scale`). It keeps the scale it was parsed with, so
//! `"0.50"` is written back as `"0.50"`: the text a venue sent is the text a
//! client receives. Equality, ordering and hashing are numeric (`0.5 == 0.50`).
//!
//! Limits: at most [`MAX_DIGITS`] significant digits and a scale of at most
//! [`MAX_SCALE`] — 20 integer digits and 18 fractional digits (wei, satoshis and
//! every venue's tick fit). Values outside are an error, never rounded.
//!
//! There is no conversion from `f64`. Parsing a JSON *number* goes through its
//! text (see [`exact_number`]), never through binary floating point.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Largest scale (digits after the point) a [`Decimal`] holds.
pub const MAX_SCALE: u8 = 18;
/// Largest number of significant digits a [`Decimal`] holds.
pub const MAX_DIGITS: u32 = 38;

const MAX_MANTISSA: u128 = 10u128.pow(MAX_DIGITS) - 1;

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// The text is empty or not a decimal number.
    #[error("not a decimal number: {0:?}")]
    Syntax(String),
    /// More than 38 significant digits.
    #[error("decimal has more than {MAX_DIGITS} significant digits: {0:?}")]
    TooManyDigits(String),
    /// More than 18 non-zero digits after the point.
    #[error("decimal has more than {MAX_SCALE} digits after the point: {0:?}")]
    ScaleTooLarge(String),
}

/// An exact decimal number (see the module docs).
#[derive(Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

impl Decimal {
    /// Zero, with scale 0.
    pub const ZERO: Decimal = Decimal {
        mantissa: 0,
        scale: 0,
    };

    /// `mantissa × 10^-scale`. Fails when the scale or the digits are out of range.
    pub fn from_parts(mantissa: i128, scale: u8) -> Result<Self, DecimalError> {
        if scale > MAX_SCALE {
            return Err(DecimalError::ScaleTooLarge(format!("{mantissa}e-{scale}")));
        }
        if mantissa.unsigned_abs() > MAX_MANTISSA {
            return Err(DecimalError::TooManyDigits(format!("{mantissa}e-{scale}")));
        }
        Ok(Decimal { mantissa, scale })
    }

    /// The integer mantissa.
    pub fn mantissa(self) -> i128 {
        self.mantissa
    }

    /// Digits after the point, as written.
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// True for any zero (`0`, `0.00`, `-0.0`).
    pub fn is_zero(self) -> bool {
        self.mantissa == 0
    }

    /// True when strictly below zero.
    pub fn is_negative(self) -> bool {
        self.mantissa < 0
    }

    /// The same value with trailing fractional zeros removed (`1.500` → `1.5`).
    pub fn normalized(self) -> Self {
        let (mut m, mut s) = (self.mantissa, self.scale);
        while s > 0 && m % 10 == 0 {
            m /= 10;
            s -= 1;
        }
        Decimal {
            mantissa: m,
            scale: s,
        }
    }

    /// The same value written with exactly `scale` fractional digits, if that
    /// loses nothing and fits; `None` otherwise.
    pub fn rescaled(self, scale: u8) -> Option<Self> {
        if scale > MAX_SCALE {
            return None;
        }
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(self),
            Ordering::Greater => {
                let m = self
                    .mantissa
                    .checked_mul(POW10[usize::from(scale - self.scale)])?;
                (m.unsigned_abs() <= MAX_MANTISSA).then_some(Decimal { mantissa: m, scale })
            }
            Ordering::Less => {
                let div = POW10[usize::from(self.scale - scale)];
                (self.mantissa % div == 0).then_some(Decimal {
                    mantissa: self.mantissa / div,
                    scale,
                })
            }
        }
    }

    /// An approximation for display and statistics only; never use it on the data path.
    pub fn to_f64_lossy(self) -> f64 {
        self.mantissa as f64 / POW10[usize::from(self.scale)] as f64
    }

    /// Exact sum, `None` on overflow. The scale is the larger of the two.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        let s = self.scale.max(other.scale);
        let a = self.rescaled(s)?;
        let b = other.rescaled(s)?;
        let m = a.mantissa.checked_add(b.mantissa)?;
        Decimal::from_parts(m, s).ok()
    }

    /// Exact difference, `None` on overflow.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.checked_add(Decimal {
            mantissa: other.mantissa.checked_neg()?,
            scale: other.scale,
        })
    }

    /// Parse the textual form: optional sign, digits, optional fraction, optional
    /// exponent (`1.5`, `-0.00000845`, `8.45e-6`, `12E3`). Exact or an error.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let b = text.as_bytes();
        if let Some(d) = parse_simple(b) {
            return Ok(d);
        }
        parse_bytes(b).map_err(|kind| kind.with_text(text))
    }

    /// Write the canonical text (no exponent, scale as stored) into `buf`,
    /// returning the written slice. Never allocates.
    pub fn write_to<'b>(&self, buf: &'b mut [u8; 48]) -> &'b str {
        let mut digits = itoa::Buffer::new();
        let d = digits.format(self.mantissa.unsigned_abs()).as_bytes();
        let scale = usize::from(self.scale);
        let mut n = 0;
        if self.mantissa < 0 {
            buf[0] = b'-';
            n = 1;
        }
        if scale == 0 {
            buf[n..n + d.len()].copy_from_slice(d);
            n += d.len();
        } else if d.len() > scale {
            let int = d.len() - scale;
            buf[n..n + int].copy_from_slice(&d[..int]);
            n += int;
            buf[n] = b'.';
            n += 1;
            buf[n..n + scale].copy_from_slice(&d[int..]);
            n += scale;
        } else {
            buf[n] = b'0';
            buf[n + 1] = b'.';
            n += 2;
            let zeros = scale - d.len();
            buf[n..n + zeros].fill(b'0');
            n += zeros;
            buf[n..n + d.len()].copy_from_slice(d);
            n += d.len();
        }
        // Only ASCII digits, '-' and '.' were written.
        std::str::from_utf8(&buf[..n]).unwrap_or("")
    }

    fn cmp_value(&self, other: &Self) -> Ordering {
        if self.scale == other.scale {
            return self.mantissa.cmp(&other.mantissa);
        }
        let s = self.scale.max(other.scale);
        // Bringing both to the larger scale can overflow i128 (38 digits × 10^18).
        // The side that overflows is the one of larger magnitude, so its sign decides.
        match (self.rescale_for_cmp(s), other.rescale_for_cmp(s)) {
            (Some(a), Some(b)) => a.cmp(&b),
            (None, Some(_)) => {
                if self.mantissa < 0 {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), None) => {
                if other.mantissa < 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (None, None) => self.mantissa.signum().cmp(&other.mantissa.signum()),
        }
    }

    fn rescale_for_cmp(&self, s: u8) -> Option<i128> {
        self.mantissa
            .checked_mul(POW10[usize::from(s - self.scale)])
    }
}

#[derive(Debug, Clone, Copy)]
enum ParseFail {
    Syntax,
    Digits,
    Scale,
}

impl ParseFail {
    fn with_text(self, text: &str) -> DecimalError {
        let t: String = text.chars().take(64).collect();
        match self {
            ParseFail::Syntax => DecimalError::Syntax(t),
            ParseFail::Digits => DecimalError::TooManyDigits(t),
            ParseFail::Scale => DecimalError::ScaleTooLarge(t),
        }
    }
}

/// The form venues send almost always, `[-]digits[.digits]` with at most 19
/// digits, in `u64` arithmetic (19 digits cannot overflow it, and leave at
/// most 18 after the point, so no scale adjustment is needed). `None` for
/// anything else, which [`parse_bytes`] then decides, errors included; where
/// both accept a text they give the same mantissa and scale (tested).
#[inline]
fn parse_simple(b: &[u8]) -> Option<Decimal> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = digits.len();
    for (i, &c) in digits.iter().enumerate() {
        match c {
            // Wrapping: a value with more than 19 digits is discarded below.
            b'0'..=b'9' => {
                mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            }
            b'.' if point == digits.len() && i > 0 && i + 1 < digits.len() => point = i,
            _ => return None,
        }
    }
    let has_point = point < digits.len();
    if digits.len() - usize::from(has_point) > 19 {
        return None;
    }
    let scale = if has_point {
        digits.len() - point - 1
    } else {
        0
    };
    let m = i128::from(mantissa);
    Some(Decimal {
        mantissa: if neg { -m } else { m },
        // At most 18: 19 digits with at least one before the point.
        scale: scale as u8,
    })
}

fn parse_bytes(b: &[u8]) -> Result<Decimal, ParseFail> {
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: u128 = 0;
    let mut sig_digits: u32 = 0;
    let mut int_digits = 0usize;
    let mut frac_digits: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        push_digit(&mut mantissa, &mut sig_digits, b[i])?;
        int_digits += 1;
        i += 1;
    }
    if int_digits == 0 {
        return Err(ParseFail::Syntax);
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            push_digit(&mut mantissa, &mut sig_digits, b[i])?;
            i += 1;
        }
        frac_digits = (i - start) as i64;
        if frac_digits == 0 {
            return Err(ParseFail::Syntax);
        }
    }
    let mut exp: i64 = 0;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            exp = exp
                .saturating_mul(10)
                .saturating_add(i64::from(b[i] - b'0'));
            i += 1;
        }
        if i == start {
            return Err(ParseFail::Syntax);
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return Err(ParseFail::Syntax);
    }
    // Saturating: an exponent of `e-99999999999999999999` saturates to
    // -i64::MAX (fuzzer finding: the subtraction overflowed).
    let mut scale = frac_digits.saturating_sub(exp);
    // Strip trailing zeros only as far as needed to bring the scale in range.
    while scale > i64::from(MAX_SCALE) && mantissa.is_multiple_of(10) && mantissa != 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if scale > i64::from(MAX_SCALE) {
        if mantissa == 0 {
            scale = i64::from(MAX_SCALE);
        } else {
            return Err(ParseFail::Scale);
        }
    }
    if scale < 0 {
        if mantissa != 0 {
            for _ in 0..(-scale) {
                mantissa = mantissa.checked_mul(10).ok_or(ParseFail::Digits)?;
            }
            if mantissa > MAX_MANTISSA {
                return Err(ParseFail::Digits);
            }
        }
        scale = 0;
    }
    let m = mantissa as i128;
    Ok(Decimal {
        mantissa: if neg { -m } else { m },
        scale: scale as u8,
    })
}

#[inline]
fn push_digit(mantissa: &mut u128, sig: &mut u32, c: u8) -> Result<(), ParseFail> {
    if *mantissa != 0 || c != b'0' {
        *sig += 1;
        if *sig > MAX_DIGITS {
            return Err(ParseFail::Digits);
        }
    }
    *mantissa = *mantissa * 10 + u128::from(c - b'0');
    Ok(())
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp_value(other) == Ordering::Equal
    }
}
impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_value(other)
    }
}

impl Hash for Decimal {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let n = self.normalized();
        n.mantissa.hash(state);
        n.scale.hash(state);
    }
}

impl FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decimal::parse(s)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 48];
        f.pad(self.write_to(&mut buf))
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<i64> for Decimal {
    fn from(v: i64) -> Self {
        Decimal {
            mantissa: i128::from(v),
            scale: 0,
        }
    }
}

/// JSON form: a string (`"0.00000845"`), as Coinbase and Binance send.
impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 48];
        s.serialize_str(self.write_to(&mut buf))
    }
}

/// Accepts a string or an integer. A JSON number with a fraction reaches a
/// generic deserializer only as an `f64`, so it is refused here with a pointer
/// to [`exact_number`], which reads the number's text.
impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }
}

struct DecimalVisitor;

impl serde::de::Visitor<'_> for DecimalVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal number as a string, e.g. \"0.00000845\"")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::parse(v).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal {
            mantissa: i128::from(v),
            scale: 0,
        })
    }
    fn visit_f64<E: serde::de::Error>(self, _v: f64) -> Result<Decimal, E> {
        Err(E::custom(
            "decimal arrived as a binary float; send it as a string or decode the field with mdhub_types::decimal::exact_number",
        ))
    }
}

/// Serde adapter for venue fields sent as JSON *numbers* (Kraken's `"price": 34123.4`):
/// reads the number's source text through `serde_json::value::RawValue` and parses
/// it exactly. Strings are accepted too. Use with `#[serde(with = "exact_number")]`
/// on a field of a struct decoded by `serde_json::from_slice`/`from_str` (not inside
/// `#[serde(flatten)]` or untagged enums, which buffer the value first).
pub mod exact_number {
    use super::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::value::RawValue;

    /// Parse the raw JSON text of a number or string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        let raw: &'de RawValue = <&RawValue>::deserialize(d)?;
        parse_raw(raw.get()).map_err(serde::de::Error::custom)
    }

    /// Write as a JSON string (mdhub's own encoding).
    pub fn serialize<S: Serializer>(v: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(v, s)
    }

    /// Parse a raw JSON token: a number, or a string holding a number.
    pub fn parse_raw(text: &str) -> Result<Decimal, super::DecimalError> {
        let t = text.trim();
        let t = t
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(t);
        Decimal::parse(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Where the fast path accepts a text, the general parser gives the same
    /// mantissa and scale.
    fn fast_path_agrees(text: &str) -> Result<(), TestCaseError> {
        let b = text.as_bytes();
        if let Some(fast) = parse_simple(b) {
            let general = parse_bytes(b);
            prop_assert!(
                general.is_ok(),
                "{text:?}: fast {fast:?}, general {general:?}"
            );
            if let Ok(g) = general {
                prop_assert_eq!(
                    (fast.mantissa, fast.scale),
                    (g.mantissa, g.scale),
                    "{:?}",
                    text
                );
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn fast_path_matches_general_parser_on_plain_decimals(
            text in "[-+]?[0-9]{0,21}(\\.[0-9]{0,21})?",
        ) {
            fast_path_agrees(&text)?;
        }

        #[test]
        fn fast_path_matches_general_parser_on_any_text(text in "[-+0-9.eE ]{0,24}") {
            fast_path_agrees(&text)?;
        }
    }

    #[test]
    fn fast_path_edges() {
        for t in [
            "", "-", ".", "1.", ".5", "-.5", "1..2", "1.2.3", "+1", "1e3", " 1", "--1",
        ] {
            assert!(parse_simple(t.as_bytes()).is_none(), "{t:?}");
        }
        // 19 digits: the fast path; 20: the general parser, same answer.
        for t in [
            "9999999999999999999",
            "0.999999999999999999",
            "-999999999.9999999999",
            "99999999999999999999",
            "0.0000000000000000001",
            "-0",
            "-0.00",
            "00012.3400",
        ] {
            fast_path_agrees(t).unwrap();
        }
        assert!(parse_simple(b"99999999999999999999").is_none());
        assert_eq!(d("-0.00").to_string(), "0.00");
        assert_eq!(d("00012.3400").to_string(), "12.3400");
        assert!(Decimal::parse("0.0000000000000000001").is_err());
    }

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_the_same_text() {
        for s in [
            "0.00000845",
            "12345678901.12345678",
            "0.123456789012345678",
            "0",
            "-1.50",
            "100",
            "99999999999999999999.999999999999999999",
            "0.000000000000000001",
        ] {
            assert_eq!(d(s).to_string(), s);
        }
    }

    #[test]
    fn exponents_are_exact() {
        assert_eq!(d("8.45e-6").to_string(), "0.00000845");
        assert_eq!(d("12E3").to_string(), "12000");
        assert_eq!(d("1.5E+2").to_string(), "150");
        assert_eq!(d("+2").to_string(), "2");
        assert_eq!(d("1000e-21").to_string(), "0.000000000000000001");
    }

    /// Fuzzer finding: an exponent beyond i64 with fraction digits overflowed
    /// the scale computation (a panic in debug builds).
    #[test]
    fn huge_exponents_are_errors_not_overflows() {
        for s in ["1.5e-99999999999999999999", "-9.1E-99999999999999999999999"] {
            assert!(
                matches!(Decimal::parse(s), Err(DecimalError::ScaleTooLarge(_))),
                "{s}"
            );
        }
        assert!(Decimal::parse("0.0e-99999999999999999999").is_ok());
        assert!(Decimal::parse("1.5e99999999999999999999").is_err());
    }

    #[test]
    fn rejects_bad_text() {
        for s in [
            "", "-", ".5", "5.", "1e", "abc", "1.2.3", "1 ", "0x10", "NaN", "inf", "1e-19",
        ] {
            assert!(Decimal::parse(s).is_err(), "{s:?} should fail");
        }
        assert!(matches!(
            Decimal::parse("1234567890123456789012345678901234567890"),
            Err(DecimalError::TooManyDigits(_))
        ));
        assert!(matches!(
            Decimal::parse("0.0000000000000000001"),
            Err(DecimalError::ScaleTooLarge(_))
        ));
    }

    #[test]
    fn equality_and_order_are_numeric() {
        assert_eq!(d("0.5"), d("0.50"));
        assert!(d("0.5") < d("0.51"));
        assert!(d("-1") < d("0.000001"));
        assert!(d("99999999999999999999999999999999999999") > d("0.1"));
        use std::collections::hash_map::DefaultHasher;
        let h = |x: Decimal| {
            let mut h = DefaultHasher::new();
            x.hash(&mut h);
            h.finish()
        };
        assert_eq!(h(d("1.500")), h(d("1.5")));
    }

    #[test]
    fn rescale_is_lossless_or_none() {
        assert_eq!(
            d("1.5").rescaled(18).unwrap().mantissa(),
            1_500_000_000_000_000_000
        );
        assert_eq!(d("1.50").rescaled(1).unwrap().to_string(), "1.5");
        assert!(d("1.55").rescaled(1).is_none());
        assert_eq!(d("1.1").checked_add(d("2.25")).unwrap().to_string(), "3.35");
        assert_eq!(
            d("1.1").checked_sub(d("2.25")).unwrap().to_string(),
            "-1.15"
        );
    }

    #[test]
    fn serde_string_and_exact_number() {
        let v: Decimal = serde_json::from_str("\"0.00000845\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"0.00000845\"");
        assert!(serde_json::from_str::<Decimal>("0.1").is_err());
        assert_eq!(serde_json::from_str::<Decimal>("7").unwrap(), d("7"));

        #[derive(serde::Deserialize)]
        struct KrakenLike {
            #[serde(with = "exact_number")]
            price: Decimal,
        }
        for (json, want) in [
            (r#"{"price": 0.123456789012345678}"#, "0.123456789012345678"),
            (r#"{"price": 12345678901.12345678}"#, "12345678901.12345678"),
            (r#"{"price": 8.45e-6}"#, "0.00000845"),
            (r#"{"price": "0.1"}"#, "0.1"),
        ] {
            let k: KrakenLike = serde_json::from_str(json).unwrap();
            assert_eq!(k.price.to_string(), want);
        }
    }
}
