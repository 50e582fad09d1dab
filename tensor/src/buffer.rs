//! [`HostBuffer`]: a contiguous run of elements in host memory, of any dtype. It is how data
//! crosses between the host and a backend (`Backend::from_host` / `Backend::to_host`), and the
//! CPU backend uses it directly as its storage.

use crate::dtype::{DType, Element};
use crate::{Error, Result};
use alloc::vec::Vec;
use half::{bf16, f16};

/// A typed, contiguous host buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum HostBuffer {
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

/// Conversion between `Vec<T>` / `&[T]` and [`HostBuffer`], implemented for every element type.
pub trait HostElement: Element {
    fn into_buffer(v: Vec<Self>) -> HostBuffer;
    fn from_buffer(b: HostBuffer) -> core::result::Result<Vec<Self>, HostBuffer>;
    fn slice(b: &HostBuffer) -> Option<&[Self]>;
    fn slice_mut(b: &mut HostBuffer) -> Option<&mut [Self]>;
}

macro_rules! host_element {
    ($t:ty, $v:ident) => {
        impl HostElement for $t {
            fn into_buffer(v: Vec<Self>) -> HostBuffer {
                HostBuffer::$v(v)
            }
            fn from_buffer(b: HostBuffer) -> core::result::Result<Vec<Self>, HostBuffer> {
                match b {
                    HostBuffer::$v(v) => Ok(v),
                    other => Err(other),
                }
            }
            fn slice(b: &HostBuffer) -> Option<&[Self]> {
                match b {
                    HostBuffer::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(b: &mut HostBuffer) -> Option<&mut [Self]> {
                match b {
                    HostBuffer::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
host_element!(f16, F16);
host_element!(bf16, BF16);
host_element!(f32, F32);
host_element!(f64, F64);
host_element!(i64, I64);
host_element!(u8, U8);

/// Calls `$body` with `$v` bound to the typed `Vec` inside a [`HostBuffer`] and `$T` to its
/// element type, for all six dtypes.
#[macro_export]
macro_rules! with_buffer {
    ($buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::HostBuffer::F16($v) => $body,
            $crate::HostBuffer::BF16($v) => $body,
            $crate::HostBuffer::F32($v) => $body,
            $crate::HostBuffer::F64($v) => $body,
            $crate::HostBuffer::I64($v) => $body,
            $crate::HostBuffer::U8($v) => $body,
        }
    };
}

impl HostBuffer {
    /// The dtype of the elements.
    pub fn dtype(&self) -> DType {
        match self {
            HostBuffer::F16(_) => DType::F16,
            HostBuffer::BF16(_) => DType::BF16,
            HostBuffer::F32(_) => DType::F32,
            HostBuffer::F64(_) => DType::F64,
            HostBuffer::I64(_) => DType::I64,
            HostBuffer::U8(_) => DType::U8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_buffer!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wraps a vector.
    pub fn from_vec<T: HostElement>(v: Vec<T>) -> Self {
        T::into_buffer(v)
    }

    /// A buffer of `len` zeros of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> Self {
        Self::filled(dtype, len, 0.0)
    }

    /// [`HostBuffer::filled`], or an error (naming `op`, the bytes and the limit) if `len`
    /// elements of `dtype` exceed the memory budget ([`crate::memory`]) or the system refuses
    /// the allocation: never an allocator abort.
    pub fn try_filled(op: &'static str, dtype: DType, len: usize, value: f64) -> Result<Self> {
        crate::memory::check_alloc(op, len, dtype)?;
        fn fill<T: HostElement>(op: &str, len: usize, value: f64) -> Result<HostBuffer> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| Error::Device {
                msg: crate::__format!(
                    "{op}: the system refused an allocation of {len} {} elements ({} bytes)",
                    T::DTYPE,
                    len.saturating_mul(T::DTYPE.size_in_bytes())
                ),
            })?;
            v.resize(len, T::from_f64(value));
            Ok(T::into_buffer(v))
        }
        match dtype {
            DType::F16 => fill::<f16>(op, len, value),
            DType::BF16 => fill::<bf16>(op, len, value),
            DType::F32 => fill::<f32>(op, len, value),
            DType::F64 => fill::<f64>(op, len, value),
            DType::I64 => fill::<i64>(op, len, value),
            DType::U8 => fill::<u8>(op, len, value),
        }
    }

    /// A buffer of `len` copies of `value` converted to `dtype`.
    pub fn filled(dtype: DType, len: usize, value: f64) -> Self {
        fn fill<T: HostElement>(len: usize, value: f64) -> HostBuffer {
            T::into_buffer(alloc::vec![T::from_f64(value); len])
        }
        match dtype {
            DType::F16 => fill::<f16>(len, value),
            DType::BF16 => fill::<bf16>(len, value),
            DType::F32 => fill::<f32>(len, value),
            DType::F64 => fill::<f64>(len, value),
            DType::I64 => fill::<i64>(len, value),
            DType::U8 => fill::<u8>(len, value),
        }
    }

    /// Unwraps into a `Vec<T>`, failing with a dtype error if `T` is not the buffer's type.
    pub fn into_vec<T: HostElement>(self) -> Result<Vec<T>> {
        T::from_buffer(self).map_err(|b| Error::DType {
            op: "to_vec",
            msg: crate::__format!(
                "asked for {} elements from a {} buffer",
                T::DTYPE,
                b.dtype()
            ),
        })
    }

    /// Borrows the elements as `&[T]` if `T` is the buffer's type.
    pub fn as_slice<T: HostElement>(&self) -> Option<&[T]> {
        T::slice(self)
    }

    /// Mutably borrows the elements as `&mut [T]` if `T` is the buffer's type.
    pub fn as_mut_slice<T: HostElement>(&mut self) -> Option<&mut [T]> {
        T::slice_mut(self)
    }

    /// Converts every element to another dtype (`to_f64` then `from_f64`; f16/bf16 round to
    /// nearest even, floats to integers truncate toward zero and saturate, as `as` does).
    pub fn cast(&self, dtype: DType) -> HostBuffer {
        fn conv<S: Element, D: HostElement>(v: &[S]) -> HostBuffer {
            D::into_buffer(v.iter().map(|&x| D::from_f64(x.to_f64())).collect())
        }
        if self.dtype() == dtype {
            return self.clone();
        }
        with_buffer!(self, v => match dtype {
            DType::F16 => conv::<_, f16>(v),
            DType::BF16 => conv::<_, bf16>(v),
            DType::F32 => conv::<_, f32>(v),
            DType::F64 => conv::<_, f64>(v),
            DType::I64 => conv::<_, i64>(v),
            DType::U8 => conv::<_, u8>(v),
        })
    }

    /// Every element as f64 (convenient in tests and for printing).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        with_buffer!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }
}
