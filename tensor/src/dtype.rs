//! Element types. A tensor's dtype is a run-time value ([`DType`]), as in PyTorch; kernels are
//! written once, generic over the [`Float`] trait, and instantiated for each float dtype.

use core::fmt;
use half::{bf16, f16};

/// The element type of a tensor, checked at run time (PyTorch: `torch.dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE half precision (`torch.float16`).
    F16,
    /// Brain float (`torch.bfloat16`).
    BF16,
    /// `torch.float32`, the default.
    F32,
    /// `torch.float64`, used by the gradient checker.
    F64,
    /// Signed 64-bit integers (`torch.int64`): indices from argmax, max-pool, gather.
    I64,
    /// Bytes (`torch.bool` / `torch.uint8`): results of comparisons, 0 or 1.
    U8,
}

impl DType {
    /// Bytes per element.
    pub const fn size_in_bytes(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::U8 => 1,
        }
    }

    /// True for the four floating-point dtypes.
    pub const fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32 | DType::F64)
    }

    /// The name PyTorch and safetensors use (`"F32"`, `"BF16"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::I64 => "I64",
            DType::U8 => "U8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for i64 {}
    impl Sealed for u8 {}
}

/// A Rust type that can be an element of a tensor. Implemented for the six dtypes; sealed.
pub trait Element:
    sealed::Sealed + Copy + Send + Sync + fmt::Debug + PartialOrd + Default + 'static
{
    /// The run-time dtype of this type.
    const DTYPE: DType;
    /// Lossy conversion to f64 (exact for every dtype except large i64).
    fn to_f64(self) -> f64;
    /// Conversion from f64, rounding to nearest (saturating for integers).
    fn from_f64(v: f64) -> Self;
}

/// Floating-point element types: what every arithmetic kernel is generic over.
///
/// f16 and bf16 are stored in their own type but most CPU kernels compute in f32 via
/// [`Float::to_f32`] (as PyTorch's CPU kernels do), so only storage is half precision.
pub trait Float: Element + num_traits::Float {
    /// Conversion to f32 (exact for f16 and bf16).
    fn to_f32(self) -> f32;
    /// Conversion from f32, rounding to nearest even.
    fn from_f32(v: f32) -> Self;
    /// The error function, erf(x).
    fn erf(self) -> Self;
}

macro_rules! impl_element {
    ($t:ty, $d:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                #[allow(clippy::redundant_closure_call)]
                ($to)(self)
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                #[allow(clippy::redundant_closure_call)]
                ($from)(v)
            }
        }
    };
}

impl_element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
impl_element!(f64, F64, |x: f64| x, |v: f64| v);
// f64 -> half goes through f32 (two round-to-nearest-even steps), as PyTorch's casts do and
// its fixtures expect. `half`'s own `bf16::from_f64` truncates the f64 to 32 bits first and
// rounded some f32 midpoints the wrong way (f32 `0x3f00_8004` became 0.5, not 0.50390625).
impl_element!(f16, F16, |x: f16| x.to_f64(), |v: f64| f16::from_f32(
    v as f32
));
impl_element!(bf16, BF16, |x: bf16| x.to_f64(), |v: f64| bf16::from_f32(
    v as f32
));
impl_element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
impl_element!(u8, U8, |x: u8| x as f64, |v: f64| v as u8);

impl Float for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Float for f64 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        v as f64
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}

impl Float for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        f16::from_f32(libm::erff(self.to_f32()))
    }
}

impl Float for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
    #[inline(always)]
    fn erf(self) -> Self {
        bf16::from_f32(libm::erff(self.to_f32()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_casts_from_f64_go_through_f32_like_pytorch() {
        // 0x3f00_8004: just above the midpoint between bf16 0.5 and 0.50390625.
        let x = f32::from_bits(0x3f00_8004) as f64;
        assert_eq!(
            bf16::from_f64(x).to_f32(),
            0.5,
            "half's own rounding (the bug)"
        );
        assert_eq!(<bf16 as Element>::from_f64(x).to_f32(), 0.503_906_25);
        // Every f32 value: via f64 equals the direct (correctly rounded) f32 cast.
        for bits in (0..u32::MAX).step_by(9_973) {
            let v = f32::from_bits(bits);
            if v.is_nan() {
                continue;
            }
            assert_eq!(
                <bf16 as Element>::from_f64(v as f64),
                bf16::from_f32(v),
                "{bits:#x}"
            );
            assert_eq!(
                <f16 as Element>::from_f64(v as f64),
                f16::from_f32(v),
                "{bits:#x}"
            );
        }
        // An f64 just above a half-precision midpoint rounds to f32 first (onto the midpoint),
        // then ties to even: PyTorch's `torch.tensor(x, dtype=float64).half()` gives 1.0.
        let just_above = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        assert_eq!(<f16 as Element>::from_f64(just_above).to_f64(), 1.0);
    }
}
