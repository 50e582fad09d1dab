//! How close a backend's result must be to the CPU reference: one [`Tolerance`] per dtype and
//! [`OpFamily`].
//!
//! An element passes when `|actual − expected| ≤ atol + rtol · |expected|` (NaN matches NaN,
//! an infinity matches the same infinity). Integer and byte dtypes (`I64`, `U8`) are exact.
//!
//! | dtype | elementwise | reduction | matmul / conv | softmax / norm | whole step |
//! |---|---|---|---|---|---|
//! | f64  | 1e-12, 1e-12 | 1e-10, 1e-10 | 1e-10, 1e-10 | 1e-10, 1e-10 | 1e-8, 1e-7 |
//! | f32  | 1e-6, 1e-5   | 1e-5, 1e-4   | 1e-4, 1e-4   | 1e-5, 1e-4   | 1e-4, 1e-3 |
//! | f16  | 1e-3, 2e-3   | 1e-2, 1e-2   | 1e-2, 1e-2   | 5e-3, 1e-2   | 5e-2, 5e-2 |
//! | bf16 | 1e-2, 1.6e-2 | 5e-2, 5e-2   | 5e-2, 5e-2   | 2e-2, 5e-2   | 1e-1, 1e-1 |
//!
//! (each cell is `atol, rtol`). Elementwise ops allow about a few units in the last place of
//! the dtype; reductions and matmuls may sum in a different order (or in a wider accumulator),
//! which costs about `√n` ulps; a whole training step chains hundreds of ops and an optimizer
//! that divides by gradient magnitudes, so it gets the loosest bound; its `atol` is also
//! multiplied by each compared tensor's largest magnitude (when above 1), because an
//! element's error after a whole step is a multiple of the largest terms summed into it
//! (see `steps.rs`).

use tessera_tensor::DType;

/// An absolute and a relative tolerance: `|actual − expected| ≤ atol + rtol · |expected|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// The absolute part, which matters for expected values near zero.
    pub atol: f64,
    /// The relative part, a multiple of `|expected|`.
    pub rtol: f64,
}

impl Tolerance {
    /// Exact equality (the bound for integer dtypes).
    pub const EXACT: Tolerance = Tolerance::new(0.0, 0.0);

    /// A tolerance of `atol` and `rtol`.
    pub const fn new(atol: f64, rtol: f64) -> Self {
        Tolerance { atol, rtol }
    }

    /// The largest allowed `|actual − expected|` for this `expected`.
    pub fn bound(&self, expected: f64) -> f64 {
        self.atol + self.rtol * expected.abs()
    }

    /// True if `actual` is within the bound of `expected` (NaN matches NaN).
    pub fn accepts(&self, expected: f64, actual: f64) -> bool {
        if expected.is_nan() || actual.is_nan() {
            return expected.is_nan() && actual.is_nan();
        }
        if expected.is_infinite() || actual.is_infinite() {
            // Only the same infinity (the bound of an infinite value would be infinite too).
            return expected == actual;
        }
        expected == actual || (actual - expected).abs() <= self.bound(expected)
    }

    /// This tolerance with both parts multiplied by `k` (a backend documenting a looser bound).
    pub fn scaled(&self, k: f64) -> Self {
        Tolerance::new(self.atol * k, self.rtol * k)
    }
}

/// The op families the table distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpFamily {
    /// Unary/binary math, comparisons, casts, copies, indexing, padding, concatenation.
    Elementwise,
    /// Sums, means, max/min, variance, pooling and interpolation (weighted sums).
    Reduction,
    /// Matrix products and convolutions (and their backward).
    MatmulConv,
    /// Softmax, log-softmax, layer norm and batch norm.
    SoftmaxNorm,
    /// A whole forward + backward + optimizer step of a model.
    WholeStep,
}

impl OpFamily {
    /// Every family, in table order.
    pub const ALL: [OpFamily; 5] = [
        OpFamily::Elementwise,
        OpFamily::Reduction,
        OpFamily::MatmulConv,
        OpFamily::SoftmaxNorm,
        OpFamily::WholeStep,
    ];

    fn column(self) -> usize {
        self as usize
    }
}

/// The float dtypes the table has rows for, in table order.
pub const FLOAT_DTYPES: [DType; 4] = [DType::F64, DType::F32, DType::F16, DType::BF16];

const DEFAULT: [[Tolerance; 5]; 4] = {
    const fn t(atol: f64, rtol: f64) -> Tolerance {
        Tolerance::new(atol, rtol)
    }
    [
        [
            t(1e-12, 1e-12),
            t(1e-10, 1e-10),
            t(1e-10, 1e-10),
            t(1e-10, 1e-10),
            t(1e-8, 1e-7),
        ],
        [
            t(1e-6, 1e-5),
            t(1e-5, 1e-4),
            t(1e-4, 1e-4),
            t(1e-5, 1e-4),
            t(1e-4, 1e-3),
        ],
        [
            t(1e-3, 2e-3),
            t(1e-2, 1e-2),
            t(1e-2, 1e-2),
            t(5e-3, 1e-2),
            t(5e-2, 5e-2),
        ],
        [
            t(1e-2, 1.6e-2),
            t(5e-2, 5e-2),
            t(5e-2, 5e-2),
            t(2e-2, 5e-2),
            t(1e-1, 1e-1),
        ],
    ]
};

fn row(dtype: DType) -> Option<usize> {
    FLOAT_DTYPES.iter().position(|&d| d == dtype)
}

/// The kit's default tolerance for `dtype` and `family` (the table in the [module
/// docs](self)); [`Tolerance::EXACT`] for `I64` and `U8`.
pub fn tolerance(dtype: DType, family: OpFamily) -> Tolerance {
    match row(dtype) {
        Some(r) => DEFAULT[r][family.column()],
        None => Tolerance::EXACT,
    }
}

/// A whole table of tolerances, which every check takes: start from
/// [`ToleranceTable::default`] (the kit's table) and loosen single cells with
/// [`ToleranceTable::set`] where a backend documents a larger error (say, TF32 matmuls).
#[derive(Clone, Debug, PartialEq)]
pub struct ToleranceTable {
    cells: [[Tolerance; 5]; 4],
}

impl Default for ToleranceTable {
    fn default() -> Self {
        ToleranceTable { cells: DEFAULT }
    }
}

impl ToleranceTable {
    /// A table where every float cell is exact: for a backend that must be bit-identical to
    /// the CPU (the test backend `Counting`, which runs the CPU's kernels).
    pub fn exact() -> Self {
        ToleranceTable {
            cells: [[Tolerance::EXACT; 5]; 4],
        }
    }

    /// The tolerance for `dtype` and `family`; exact for integer dtypes.
    pub fn get(&self, dtype: DType, family: OpFamily) -> Tolerance {
        match row(dtype) {
            Some(r) => self.cells[r][family.column()],
            None => Tolerance::EXACT,
        }
    }

    /// Replaces one cell (no-op for integer dtypes, which stay exact).
    pub fn set(&mut self, dtype: DType, family: OpFamily, tol: Tolerance) -> &mut Self {
        if let Some(r) = row(dtype) {
            self.cells[r][family.column()] = tol;
        }
        self
    }

    /// Every float cell multiplied by `k`.
    pub fn scaled(&self, k: f64) -> Self {
        let mut t = self.clone();
        for r in &mut t.cells {
            for c in r.iter_mut() {
                *c = c.scaled(k);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_loosens_with_precision_and_op_size() {
        for fam in OpFamily::ALL {
            let t: Vec<Tolerance> = FLOAT_DTYPES.iter().map(|&d| tolerance(d, fam)).collect();
            assert!(
                t.windows(2)
                    .all(|w| w[0].atol < w[1].atol && w[0].rtol < w[1].rtol),
                "{fam:?}: {t:?}"
            );
        }
        for d in FLOAT_DTYPES {
            let el = tolerance(d, OpFamily::Elementwise);
            assert!(OpFamily::ALL
                .iter()
                .all(|&f| tolerance(d, f).atol >= el.atol));
            assert!(
                tolerance(d, OpFamily::WholeStep).rtol >= tolerance(d, OpFamily::MatmulConv).rtol
            );
        }
        assert_eq!(tolerance(DType::I64, OpFamily::WholeStep), Tolerance::EXACT);
        assert_eq!(tolerance(DType::U8, OpFamily::Reduction), Tolerance::EXACT);
        assert_eq!(
            tolerance(DType::F32, OpFamily::MatmulConv),
            Tolerance::new(1e-4, 1e-4)
        );
    }

    #[test]
    fn accepts_nan_inf_and_the_bound() {
        let t = Tolerance::new(1e-3, 1e-2);
        assert!(
            t.accepts(f64::NAN, f64::NAN) && !t.accepts(f64::NAN, 0.0) && !t.accepts(0.0, f64::NAN)
        );
        assert!(
            t.accepts(f64::INFINITY, f64::INFINITY) && !t.accepts(f64::INFINITY, f64::NEG_INFINITY)
        );
        assert!(t.accepts(100.0, 101.0) && !t.accepts(100.0, 101.01));
        assert!(t.accepts(0.0, 1e-3) && !t.accepts(0.0, 1.1e-3));
        assert!(!Tolerance::EXACT.accepts(1.0, 1.0 + f64::EPSILON));
    }

    #[test]
    fn tables_can_be_edited() {
        let mut t = ToleranceTable::default();
        t.set(DType::F32, OpFamily::MatmulConv, Tolerance::new(1e-3, 1e-3));
        assert_eq!(
            t.get(DType::F32, OpFamily::MatmulConv),
            Tolerance::new(1e-3, 1e-3)
        );
        assert_eq!(
            t.get(DType::F16, OpFamily::MatmulConv),
            tolerance(DType::F16, OpFamily::MatmulConv)
        );
        t.set(DType::I64, OpFamily::Elementwise, Tolerance::new(1.0, 1.0));
        assert_eq!(t.get(DType::I64, OpFamily::Elementwise), Tolerance::EXACT);
        let s = ToleranceTable::default().scaled(10.0);
        assert_eq!(
            s.get(DType::F64, OpFamily::Elementwise),
            Tolerance::new(1e-11, 1e-11)
        );
        assert_eq!(
            ToleranceTable::exact().get(DType::BF16, OpFamily::WholeStep),
            Tolerance::EXACT
        );
    }
}
