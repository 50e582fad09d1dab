//! Branch-free f32 `erf` and `exp` for the elementwise kernels (fused GELU and `erf`).
//!
//! `libm::erff` branches on the argument's range and calls `expf`, so a loop over a slice
//! calls it once per element and cannot vectorize; in the ViT profile it was ~5% of a
//! training step. These versions compute every range's formula with plain arithmetic and
//! pick the result with a select, so a loop over a slice compiles to SIMD code. Max abs
//! error of [`erf`] vs f64 `libm::erf` on a dense sweep of [-10, 10]: 6.6e-8, see the test.
//! f64 keeps `libm::erf` (the f64 finite-difference gradient checks rely on it).

/// Coefficients of `erf(x)/x - 1` on `|x| < 1`, in `u = 2x^2 - 1` (Chebyshev interpolant
/// of degree 6, converted to monomials; truncation error ~1e-9). Evaluating `x + x*p`
/// rather than `x * (1 + p)` leaves one rounding of the result as the main error.
pub(crate) const SMALL: [f32; 7] = [
    -0.034_531_26,
    -0.140_536_1,
    0.019_852_498,
    -0.002_285_419_5,
    0.000_217_511_99,
    -1.766_908_1e-5,
    1.231_640_2e-6,
];

/// Coefficients of `q(x) = ln(erfc(x)) + x^2` on `1 <= x <= 4`, in `t = (x - 2.5) / 1.5`
/// (Chebyshev interpolant of degree 8; `erfc = exp(q - x^2)`, error in `q` ~2e-8).
pub(crate) const LARGE: [f32; 9] = [
    -1.556_815_3,
    -0.529_021,
    0.126_239_31,
    -0.036_647_495,
    0.010_961_124,
    -0.003_190_472_8,
    0.000_881_570_9,
    -0.000_227_403_4,
    4.136_663_4e-5,
];

/// `e^r` on `|r| <= ln(2)/2` (Chebyshev interpolant of degree 6, relative error ~3e-9).
pub(crate) const EXP: [f32; 7] = [
    1.0,
    1.000_000_04,
    0.5,
    0.166_664_15,
    0.041_666_218,
    0.008_375_129,
    0.001_394_858_1,
];

/// `c[0] + t*(c[1] + t*(...))`.
#[inline(always)]
fn horner<const N: usize>(t: f32, c: &[f32; N]) -> f32 {
    let mut acc = c[N - 1];
    for &k in c[..N - 1].iter().rev() {
        acc = acc * t + k;
    }
    acc
}

/// [`exp`]'s round-to-nearest by adding 1.5 * 2^23: the integer then sits in the low
/// mantissa bits.
pub(crate) const SHIFT: f32 = 12_582_912.0;
/// ln 2 split so that `n * LN2_HI` is exact for |n| < 2^14.
pub(crate) const LN2_HI: f32 = 0.693_359_4;
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;

/// `1/sqrt(2 pi)`, the standard normal density's factor (GELU's backward).
pub(crate) const INV_SQRT_2PI: f32 =
    (0.5 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2) as f32;

/// `e^y`, relative error ~2e-7, for `y <= 88` (0 below -87, NaN for NaN). Branch-free:
/// `y = n ln2 + r`, `e^r` by polynomial, `2^n` built in the exponent bits.
#[inline(always)]
pub(crate) fn exp(y: f32) -> f32 {
    let yc = if y < -87.0 { -87.0 } else { y }; // keeps 2^n normal; a NaN passes through
    let shifted = yc * core::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = (yc - n * LN2_HI) - n * LN2_LO;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    let e = horner(r, &EXP) * scale;
    if y < -87.0 {
        0.0
    } else {
        e
    }
}

/// The error function for f32; max abs error 6.6e-8 (1.1 ulp of values near 1).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const SIGN: u32 = 0x8000_0000;
    let ax = f32::from_bits(x.to_bits() & !SIGN);
    // |x| < 1: odd polynomial.
    let small = ax + ax * horner(ax * ax * 2.0 - 1.0, &SMALL);
    // |x| >= 1: 1 - erfc, erfc = exp(q(x) - x^2). Above 4, erf rounds to 1 in f32; clamping
    // there (and below at 1 for the lanes that use `small`) keeps `t` in the fitted range.
    let xc = if ax > 4.0 { 4.0 } else { ax };
    let xc = if xc < 1.0 { 1.0 } else { xc };
    let q = horner((xc - 2.5) * (1.0 / 1.5), &LARGE);
    let large = 1.0 - exp(q - xc * xc);
    let r = if ax < 1.0 { small } else { large };
    f32::from_bits(r.to_bits() | (x.to_bits() & SIGN))
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// Max |erf(x) - libm::erf(x as f64)| over every 2^-16 step of [-10, 10] plus the
    /// special points. Measured: 6.6e-8 (at x = -1.0636) (the bound asserted is 2e-7).
    #[test]
    fn erf_f32_max_abs_error_below_2e7_on_dense_sweep_of_minus10_to_10() {
        let mut worst = (0.0f64, 0.0f32);
        let step = 1.0 / 65536.0;
        let n = (20.0 / step) as i64;
        let mut check = |x: f32| {
            let e = (erf(x) as f64 - libm::erf(x as f64)).abs();
            if e > worst.0 {
                worst = (e, x);
            }
        };
        for i in 0..=n {
            check((-10.0 + i as f64 * step) as f32);
        }
        for x in [
            0.0f32,
            1.0,
            -1.0,
            4.0,
            1e-30,
            1e-45,
            0.999_999_94,
            1.000_000_1,
            3.999_999_8,
        ] {
            check(x);
        }
        std::println!("erf_f32 max abs error {:.3e} at x = {}", worst.0, worst.1);
        assert!(
            worst.0 <= 2e-7,
            "erf_f32 error {:e} at {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn erf_f32_special_values() {
        assert_eq!(erf(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(erf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert_eq!(erf(30.0), 1.0);
        assert!(erf(f32::NAN).is_nan());
        // Odd symmetry holds exactly.
        for x in [0.3f32, 0.99, 1.0, 1.7, 2.5, 3.9] {
            assert_eq!(erf(-x), -erf(x));
        }
    }

    #[test]
    fn exp_f32_relative_error_on_gelu_range() {
        let mut worst = 0.0f64;
        let mut y = -87.0f32;
        while y <= 10.0 {
            let want = libm::exp(y as f64);
            worst = worst.max(((exp(y) as f64 - want) / want).abs());
            y += 1.0 / 1024.0;
        }
        std::println!("exp_f32 max relative error {worst:.3e}");
        assert!(worst < 3e-7, "exp error {worst:e}");
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(f32::NAN).is_nan());
    }
}
