//! Exact decimals in Arrow and Parquet: one `DECIMAL(precision, scale)` per
//! file and column, chosen from the values.

use arrow_array::Decimal128Array;
use arrow_schema::DataType;
use mdhub_types::Decimal;

use crate::{HistoryError, Result};

/// The largest precision stored as a Parquet `INT64`.
const INT64_PRECISION: u8 = 18;
/// The largest precision of a 16-byte decimal (Parquet `FIXED_LEN_BYTE_ARRAY(16)`).
const MAX_PRECISION: u8 = 38;

/// The Arrow type `Decimal128(precision, scale)` of one column of one file.
///
/// The scale is the smallest that holds every value exactly (trailing zeros
/// do not count: `0.50` and `0.5` both need scale 1); the precision is 18 when
/// every rescaled value has at most 18 digits — Parquet then stores the
/// column as `INT64` — and 38 (`FIXED_LEN_BYTE_ARRAY(16)`) otherwise.
/// Values are rescaled in integer arithmetic, never through `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalType {
    /// Significant digits: 18 or 38.
    pub precision: u8,
    /// Digits after the point: 0 to 18.
    pub scale: u8,
}

impl DecimalType {
    /// The lake's type for every price and size: `Decimal128(38, 18)`
    /// (Parquet `FIXED_LEN_BYTE_ARRAY(16)`), which holds every
    /// [`Decimal`] with at most 20 integer digits exactly. One type for every
    /// file matters: DuckDB's `read_parquet` over files whose decimal types
    /// differ casts every file to the first file's type and silently drops
    /// digits (`12345678901.12345678` read as `12345678901.1` after a
    /// `DECIMAL(18,1)` file), and pyarrow's dataset refuses such files.
    pub const LAKE: DecimalType = DecimalType {
        precision: MAX_PRECISION,
        scale: 18,
    };

    /// The smallest type holding every value of `column` (named for errors).
    /// An empty column gets `(18, 0)`.
    pub fn for_values(
        column: &'static str,
        values: impl IntoIterator<Item = Decimal> + Clone,
    ) -> Result<Self> {
        let scale = values
            .clone()
            .into_iter()
            .map(|d| d.normalized().scale())
            .max()
            .unwrap_or(0);
        let limit = 10i128.pow(u32::from(INT64_PRECISION));
        let mut precision = INT64_PRECISION;
        for d in values {
            let m = d
                .rescaled(scale)
                .ok_or(HistoryError::DecimalOutOfRange { column, scale })?
                .mantissa();
            if m.unsigned_abs() >= limit.unsigned_abs() {
                precision = MAX_PRECISION;
            }
        }
        Ok(DecimalType { precision, scale })
    }

    /// `Decimal128(precision, scale)`.
    pub fn data_type(self) -> DataType {
        // The scale is at most 18 (mdhub_types::decimal::MAX_SCALE).
        DataType::Decimal128(self.precision, self.scale as i8)
    }

    /// The Arrow array of `values` at this type: each value's mantissa at
    /// this scale. Fails if a value does not fit (it was not one of the values
    /// the type was chosen for).
    pub(crate) fn array(
        self,
        column: &'static str,
        values: impl Iterator<Item = Decimal>,
    ) -> Result<Decimal128Array> {
        let mantissas = values
            .map(|d| {
                d.rescaled(self.scale).map(Decimal::mantissa).ok_or(
                    HistoryError::DecimalOutOfRange {
                        column,
                        scale: self.scale,
                    },
                )
            })
            .collect::<Result<Vec<i128>>>()?;
        Ok(Decimal128Array::from(mantissas)
            .with_precision_and_scale(self.precision, self.scale as i8)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(values: &[&str]) -> Result<DecimalType> {
        let v: Vec<Decimal> = values.iter().map(|s| Decimal::parse(s).unwrap()).collect();
        DecimalType::for_values("price", v.iter().copied())
    }

    #[test]
    fn smallest_scale_that_holds_every_value() {
        assert_eq!(
            ty(&["100.50", "99.1", "7"]).unwrap(),
            DecimalType {
                precision: 18,
                scale: 1
            }
        );
        assert_eq!(
            ty(&["0.00000845", "-37.63", "0"]).unwrap(),
            DecimalType {
                precision: 18,
                scale: 8
            }
        );
        assert_eq!(
            ty(&[]).unwrap(),
            DecimalType {
                precision: 18,
                scale: 0
            }
        );
        // 18 digits still fit INT64; 19 do not.
        assert_eq!(ty(&["999999999.999999999"]).unwrap().precision, 18);
        assert_eq!(ty(&["9999999999.999999999"]).unwrap().precision, 38);
    }

    #[test]
    fn precision_38_when_big_and_fine_values_meet() {
        let t = ty(&["12345678901.12345678", "0.123456789012345678"]).unwrap();
        assert_eq!(
            t,
            DecimalType {
                precision: 38,
                scale: 18
            }
        );
        let values = ["12345678901.12345678", "0.123456789012345678", "-37.63"]
            .map(|s| Decimal::parse(s).unwrap());
        let a = t.array("price", values.into_iter()).unwrap();
        assert_eq!(a.value(0), 12_345_678_901_123_456_780_000_000_000);
        assert_eq!(a.value(1), 123_456_789_012_345_678);
        assert_eq!(a.value(2), -37_630_000_000_000_000_000);
        assert_eq!(
            arrow_array::Array::data_type(&a),
            &DataType::Decimal128(38, 18)
        );
    }

    #[test]
    fn more_than_38_digits_is_an_error_not_a_rounding() {
        let err = ty(&["123456789012345678901", "0.000000000000000001"]).unwrap_err();
        assert!(matches!(
            err,
            HistoryError::DecimalOutOfRange {
                column: "price",
                scale: 18
            }
        ));
    }
}
