//! Canonical symbols and venue ids.
//!
//! A [`Symbol`] is the canonical instrument name every part of mdhub uses:
//! `BASE-QUOTE` for crypto and FX pairs (`BTC-USDT`, `EUR-USD`), the listing
//! ticker for equities (`AAPL`, `BRK.B`). Connectors map venue-native names
//! (`BTCUSDT`, `XBT/USD`, `EURUSD`) to and from it. A [`Venue`] is a lower-case
//! id (`binance`, `sim-nasdaq`). Both are cheap to clone (shared `Arc<str>`).

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest symbol or venue id accepted.
pub(crate) const MAX_LEN: usize = 32;

/// Why a text is not a canonical symbol or venue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Symbols: 1–32 of `A-Z 0-9 . _ -`, starting with a letter or digit,
    /// not ending in `-`. Venues: the same in lower case.
    #[error("{kind} {text:?} is not canonical: {why}")]
    Invalid {
        /// "symbol" or "venue".
        kind: &'static str,
        /// The offending text (cut to 64 characters).
        text: String,
        /// What rule it breaks.
        why: &'static str,
    },
}

fn check(text: &str, kind: &'static str, upper: bool) -> Result<(), NameError> {
    let fail = |why| NameError::Invalid {
        kind,
        text: text.chars().take(64).collect(),
        why,
    };
    if text.is_empty() {
        return Err(fail("empty"));
    }
    if text.len() > MAX_LEN {
        return Err(fail("longer than 32 bytes"));
    }
    let b = text.as_bytes();
    if !b[0].is_ascii_alphanumeric() {
        return Err(fail("must start with a letter or digit"));
    }
    if b[b.len() - 1] == b'-' {
        return Err(fail("must not end with '-'"));
    }
    for &c in b {
        let ok = c.is_ascii_digit()
            || matches!(c, b'.' | b'_' | b'-')
            || if upper {
                c.is_ascii_uppercase()
            } else {
                c.is_ascii_lowercase()
            };
        if !ok {
            return Err(fail(if upper {
                "only A-Z, 0-9, '.', '_' and '-' are allowed"
            } else {
                "only a-z, 0-9, '.', '_' and '-' are allowed"
            }));
        }
    }
    Ok(())
}

/// Whether `text` is a venue id, without allocating.
pub(crate) fn is_venue(text: &str) -> bool {
    check(text, "venue", false).is_ok()
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $upper:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validate and wrap a canonical name.
            pub fn new(text: &str) -> Result<Self, NameError> {
                check(text, $kind, $upper)?;
                Ok($name(Arc::from(text)))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $name::new(s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", &self.0)
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::new(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// A canonical instrument symbol (see the module docs).
    Symbol,
    "symbol",
    true
);
name_type!(
    /// A venue id, lower case (`binance`, `sim-nasdaq`).
    Venue,
    "venue",
    false
);

impl Symbol {
    /// `BASE-QUOTE` from its two legs (`Symbol::pair("BTC", "USDT")`).
    pub fn pair(base: &str, quote: &str) -> Result<Self, NameError> {
        Symbol::new(&format!("{base}-{quote}"))
    }

    /// The two legs of a `BASE-QUOTE` pair; `None` for a plain ticker.
    pub fn legs(&self) -> Option<(&str, &str)> {
        self.0.split_once('-')
    }
}

/// A subscription or query target: a symbol on every venue that lists it
/// (`BTC-USD`), or on one venue (`BTC-USD@kraken`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instrument {
    /// The canonical symbol.
    pub symbol: Symbol,
    /// The venue, or `None` for every venue.
    pub venue: Option<Venue>,
}

impl Instrument {
    /// Parse `SYMBOL` or `SYMBOL@venue`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        match text.split_once('@') {
            Some((s, v)) => Ok(Instrument {
                symbol: Symbol::new(s)?,
                venue: Some(Venue::new(v)?),
            }),
            None => Ok(Instrument {
                symbol: Symbol::new(text)?,
                venue: None,
            }),
        }
    }

    /// Whether an event of `venue` belongs to it.
    pub fn matches(&self, venue: &str) -> bool {
        self.venue.as_ref().is_none_or(|v| v.as_str() == venue)
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.venue {
            Some(v) => write!(f, "{}@{}", self.symbol, v),
            None => write!(f, "{}", self.symbol),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments_are_a_symbol_and_maybe_a_venue() {
        let all = Instrument::parse("BTC-USD").unwrap();
        assert_eq!((all.symbol.as_str(), all.venue.as_ref()), ("BTC-USD", None));
        assert!(all.matches("kraken") && all.matches("coinbase"));
        let one = Instrument::parse("BTC-USD@kraken").unwrap();
        assert_eq!(one.venue.as_ref().map(Venue::as_str), Some("kraken"));
        assert!(one.matches("kraken") && !one.matches("coinbase"));
        assert_eq!(one.to_string(), "BTC-USD@kraken");
        for bad in [
            "btc-usd@kraken",
            "BTC-USD@Kraken",
            "BTC-USD@",
            "@kraken",
            "A@b@c",
        ] {
            assert!(Instrument::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn canonical_symbols() {
        for s in ["AAPL", "BRK.B", "BTC-USDT", "EUR-USD", "1INCH-USD"] {
            assert_eq!(Symbol::new(s).unwrap().as_str(), s);
        }
        for s in [
            "",
            "btc-usdt",
            "BTC/USD",
            "-BTC",
            "BTC-",
            "A B",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
        ] {
            assert!(Symbol::new(s).is_err(), "{s:?}");
        }
        assert_eq!(
            Symbol::pair("BTC", "USDT").unwrap().legs(),
            Some(("BTC", "USDT"))
        );
        assert_eq!(Symbol::new("AAPL").unwrap().legs(), None);
    }

    #[test]
    fn venues_are_lower_case() {
        assert!(Venue::new("binance").is_ok());
        assert!(Venue::new("sim-nasdaq").is_ok());
        assert!(Venue::new("Binance").is_err());
        let err = Venue::new("Binance").unwrap_err().to_string();
        assert!(err.contains("venue \"Binance\""), "{err}");
    }
}
