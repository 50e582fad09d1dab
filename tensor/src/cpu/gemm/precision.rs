//! The process-wide precision of f32 matrix products (PyTorch:
//! `torch.set_float32_matmul_precision`).

use core::sync::atomic::{AtomicU8, Ordering};

/// How f32 matrix products are computed on the CPU backend.
///
/// Maps to PyTorch's `torch.set_float32_matmul_precision`: [`Highest`](Self::Highest) is
/// `"highest"` and [`Bf16`](Self::Bf16) is `"medium"`. Only f32 products are affected (and
/// f16/bf16 ones, which the CPU backend computes in f32); f64 products are always exact f64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MatmulPrecision {
    /// f32 products and f32 sums (`"highest"`, the default).
    #[default]
    Highest,
    /// Both inputs rounded to bf16 (round-to-nearest-even), exact products, f32 sums, f32
    /// output (`"medium"`). Uses AVX512_BF16's `vdpbf16ps` where the CPU has it; elsewhere
    /// the inputs are rounded the same way and multiplied in f32, which gives the same
    /// results up to the order of the f32 sums.
    Bf16,
}

static PRECISION: AtomicU8 = AtomicU8::new(MatmulPrecision::Highest as u8);

/// Sets how every later f32 matrix product of the CPU backend is computed, process-wide
/// (PyTorch: `torch.set_float32_matmul_precision("highest" | "medium")`).
pub fn set_float32_matmul_precision(precision: MatmulPrecision) {
    PRECISION.store(precision as u8, Ordering::Relaxed);
}

/// The current [`MatmulPrecision`] (PyTorch: `torch.get_float32_matmul_precision()`).
pub fn float32_matmul_precision() -> MatmulPrecision {
    match PRECISION.load(Ordering::Relaxed) {
        x if x == MatmulPrecision::Bf16 as u8 => MatmulPrecision::Bf16,
        _ => MatmulPrecision::Highest,
    }
}

/// The bf16 bits nearest to `x` (round-to-nearest-even, as PyTorch and `half` round; NaN
/// stays a quiet NaN of the same sign).
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let round = 0x7FFF + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// `x` rounded to the nearest bf16 value, as an f32.
#[inline(always)]
pub(crate) fn round_bf16(x: f32) -> f32 {
    f32::from_bits((bf16_bits(x) as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_half() {
        let mut s = 0x1234_5678u32;
        let specials = [
            0.0f32,
            -0.0,
            1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN_POSITIVE,
            1e-40,
            f32::from_bits(0x3F80_8000), // a tie: rounds to even (down)
            f32::from_bits(0x3F81_8000), // a tie: rounds to even (up)
        ];
        for i in 0..100_000 {
            let x = if i < specials.len() {
                specials[i]
            } else {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                f32::from_bits(s)
            };
            let want = half::bf16::from_f32(x);
            if x.is_nan() {
                assert!(round_bf16(x).is_nan());
            } else {
                assert_eq!(bf16_bits(x), want.to_bits(), "{x:e}");
                assert_eq!(round_bf16(x), want.to_f32());
            }
        }
    }
}
