//! CPU im2col / col2im for NCHW images.

use crate::backend::Conv2dParams;
use crate::cpu::strided;
use crate::dtype::Element;
use crate::layout::Layout;
use crate::{HostBuffer, Result};
use alloc::vec::Vec;

/// `[n, c, h, w]` to `[n, c*kh*kw, oh*ow]`: row `(ci, ki, kj)`, column `(oy, ox)` holds
/// `x[ci, oy*s - p + ki*d, ox*s - p + kj*d]`, or 0 in the padding.
fn im2col_typed<T: Element>(x: &[T], n: usize, p: &Conv2dParams) -> Result<Vec<T>> {
    let [h, w] = p.in_hw;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw]) = (p.in_channels, p.kernel);
    let l = oh * ow;
    let mut out = crate::cpu::pool::filled("im2col", n * c * kh * kw * l, T::default())?;
    for b in 0..n {
        for ci in 0..c {
            let plane = &x[(b * c + ci) * h * w..][..h * w];
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = ((b * c + ci) * kh + ki) * kw + kj;
                    let dst = &mut out[row * l..][..l];
                    for oy in 0..oh {
                        let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize
                            - p.padding[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue; // stays zero
                        }
                        let src = &plane[iy as usize * w..][..w];
                        for ox in 0..ow {
                            let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize
                                - p.padding[1] as isize;
                            if ix >= 0 && ix < w as isize {
                                dst[oy * ow + ox] = src[ix as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The adjoint: every column entry is added back to the pixel it was read from.
fn col2im_typed<T: Element + core::ops::AddAssign>(
    cols: &[T],
    n: usize,
    p: &Conv2dParams,
) -> Result<Vec<T>> {
    let [h, w] = p.in_hw;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw]) = (p.in_channels, p.kernel);
    let l = oh * ow;
    let mut out = crate::cpu::pool::filled("col2im", n * c * h * w, T::default())?;
    for b in 0..n {
        for ci in 0..c {
            let plane = &mut out[(b * c + ci) * h * w..][..h * w];
            for ki in 0..kh {
                for kj in 0..kw {
                    let row = ((b * c + ci) * kh + ki) * kw + kj;
                    let src = &cols[row * l..][..l];
                    for oy in 0..oh {
                        let iy = (oy * p.stride[0] + ki * p.dilation[0]) as isize
                            - p.padding[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for ox in 0..ow {
                            let ix = (ox * p.stride[1] + kj * p.dilation[1]) as isize
                                - p.padding[1] as isize;
                            if ix >= 0 && ix < w as isize {
                                plane[iy as usize * w + ix as usize] += src[oy * ow + ox];
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn im2col(x: &HostBuffer, layout: &Layout, p: &Conv2dParams) -> Result<HostBuffer> {
    let n = layout.shape()[0];
    crate::float_dispatch!("im2col", x, v => {
        let data = strided::view(v, layout);
        Ok(crate::buffer::HostElement::into_buffer(im2col_typed(&data, n, p)?))
    })
}

pub(crate) fn col2im(cols: &HostBuffer, layout: &Layout, p: &Conv2dParams) -> Result<HostBuffer> {
    let n = layout.shape()[0];
    // Accumulate half precision in f32 to avoid losing small contributions.
    let dtype = cols.dtype();
    match cols {
        HostBuffer::F32(v) => Ok(HostBuffer::F32(col2im_typed(
            &strided::view(v, layout),
            n,
            p,
        )?)),
        HostBuffer::F64(v) => Ok(HostBuffer::F64(col2im_typed(
            &strided::view(v, layout),
            n,
            p,
        )?)),
        HostBuffer::F16(_) | HostBuffer::BF16(_) => {
            let up = strided::gather_view(cols, layout).cast(crate::DType::F32);
            let out = col2im_typed(up.as_slice::<f32>().expect("f32"), n, p)?;
            Ok(HostBuffer::F32(out).cast(dtype))
        }
        other => Err(crate::Error::DType {
            op: "col2im",
            msg: crate::__format!("needs a float tensor, got {}", other.dtype()),
        }),
    }
}
