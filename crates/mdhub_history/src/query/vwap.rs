//! The SQL aggregate `vwap(price, size)`, exact over `DECIMAL(38, 18)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal256Array};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, i256};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::logical_expr::{Accumulator, Volatility, create_udaf};

/// `vwap(price, size)`: `Σ price·size / Σ size` over `DECIMAL(38, 18)`
/// columns, exact (256-bit sums), rounded half away from zero to 18 places.
pub fn vwap_udaf() -> datafusion::logical_expr::AggregateUDF {
    let dec = DataType::Decimal128(38, 18);
    create_udaf(
        "vwap",
        vec![dec.clone(), dec.clone()],
        Arc::new(dec),
        Volatility::Immutable,
        Arc::new(|_| Ok(Box::new(Vwap::default()))),
        Arc::new(vec![
            DataType::Decimal256(76, 36),
            DataType::Decimal256(76, 18),
        ]),
    )
}

#[derive(Debug, Default)]
pub(super) struct Vwap {
    /// Σ price·size at scale 36.
    notional: i256,
    /// Σ size at scale 18.
    volume: i256,
}

impl Accumulator for Vwap {
    fn update_batch(&mut self, values: &[ArrayRef]) -> datafusion::common::Result<()> {
        let (p, s) = (
            values[0].as_primitive::<Decimal128Type>(),
            values[1].as_primitive::<Decimal128Type>(),
        );
        for r in 0..p.len() {
            if p.is_null(r) || s.is_null(r) {
                continue;
            }
            let size = i256::from_i128(s.value(r));
            self.notional = self
                .notional
                .checked_add(i256::from_i128(p.value(r)).wrapping_mul(size))
                .ok_or_else(|| DataFusionError::Execution("vwap: sum overflows".into()))?;
            self.volume = self.volume.wrapping_add(size);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> datafusion::common::Result<()> {
        let n = states[0].as_any().downcast_ref::<Decimal256Array>();
        let v = states[1].as_any().downcast_ref::<Decimal256Array>();
        let (Some(n), Some(v)) = (n, v) else {
            return Err(DataFusionError::Internal(
                "vwap state is not Decimal256".into(),
            ));
        };
        for r in 0..n.len() {
            if !n.is_null(r) {
                self.notional = self.notional.wrapping_add(n.value(r));
            }
            if !v.is_null(r) {
                self.volume = self.volume.wrapping_add(v.value(r));
            }
        }
        Ok(())
    }

    fn state(&mut self) -> datafusion::common::Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Decimal256(Some(self.notional), 76, 36),
            ScalarValue::Decimal256(Some(self.volume), 76, 18),
        ])
    }

    fn evaluate(&mut self) -> datafusion::common::Result<ScalarValue> {
        if self.volume == i256::ZERO {
            return Ok(ScalarValue::Decimal128(None, 38, 18));
        }
        // notional (scale 36) / volume (scale 18) = scale 18, rounded.
        let (q, r) = (self.notional / self.volume, self.notional % self.volume);
        let twice = r.wrapping_mul(i256::from_i128(2)).wrapping_abs();
        let round = if twice >= self.volume.wrapping_abs() {
            if (self.notional < i256::ZERO) != (self.volume < i256::ZERO) {
                i256::MINUS_ONE
            } else {
                i256::ONE
            }
        } else {
            i256::ZERO
        };
        let v = (q + round).to_i128().ok_or_else(|| {
            DataFusionError::Execution("vwap: result overflows DECIMAL(38, 18)".into())
        })?;
        Ok(ScalarValue::Decimal128(Some(v), 38, 18))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}
