//! Which orientation of a product the packed f32 kernels compute: `C = A B`, or its
//! transpose `Cᵀ = Bᵀ Aᵀ` when that wastes less of the tiles on padding.

use super::kernel_f32_narrow::NR_NARROW;
use super::packed::Kind;
use super::{MR, NR};

/// Columns of C that the tiles of an `n`-column C cover (whole `NR` panels, the last one
/// [`NR_NARROW`] wide if that covers it).
pub(super) fn padded_cols(kind: Kind, n: usize) -> usize {
    let narrow_last = matches!(kind, Kind::F32 | Kind::F32Rounded) && n % NR <= NR_NARROW;
    if narrow_last && n % NR != 0 {
        n / NR * NR + NR_NARROW
    } else {
        n.next_multiple_of(NR)
    }
}

/// Whether the f32 kernels should compute `Cᵀ = Bᵀ Aᵀ` instead of `C = A B`: when its
/// padded tiles cover at least 10% fewer elements. The weight gradients of a narrow
/// ResNet's convolutions, `dYᵀ X` with 16 or 32 output channels as rows of C, fill 16 of
/// 28 and 32 of 42 rows of their 14-row panels; transposed, the channels are columns, which
/// the 14 x 16 and 14 x 32 tiles fit exactly. Every element of C is summed the same way in
/// either orientation (one FMA chain in `k` order), so the result is the same bits.
pub(super) fn transposing_pays(kind: Kind, m: usize, n: usize) -> bool {
    if !matches!(kind, Kind::F32 | Kind::F32Rounded) {
        return false;
    }
    let area = |rows: usize, cols: usize| rows.next_multiple_of(MR) * padded_cols(kind, cols);
    10 * area(n, m) < 9 * area(m, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BYOL small ResNet's products (`m x n`, channels 16-128, `k` irrelevant): only the
    /// weight gradients of 16 and 32 output channels are transposed.
    #[test]
    fn only_the_narrow_weight_gradients_are_transposed() {
        assert_eq!(padded_cols(Kind::F32, 16), 16);
        assert_eq!(padded_cols(Kind::F32, 144), 144); // 4 panels and a narrow one
        assert_eq!(padded_cols(Kind::F32, 100), 112);
        assert_eq!(padded_cols(Kind::F32, 120), 128);
        assert_eq!(padded_cols(Kind::F32, 17), 32);
        assert_eq!(padded_cols(Kind::Bf16, 16), 32);
        for (m, n, want) in [
            (16, 144, true),     // stage 1, dW: 28 x 144 tiles against 154 x 16
            (32, 288, true),     // stage 2, dW: 42 x 288 against 294 x 32
            (64, 576, false),    // stage 3, dW: 7% less, under the threshold
            (128, 1152, false),  // stage 4, dW
            (100352, 16, false), // stage 1, forward
            (100352, 144, false),
        ] {
            assert_eq!(transposing_pays(Kind::F32, m, n), want, "{m} x {n}");
        }
        assert!(!transposing_pays(Kind::Amx, 16, 144));
    }
}
