//! Geometry of the image ops (convolution, pooling, resizing), shared by the front end, the
//! backends and autograd. Output sizes follow PyTorch's formulas exactly.

use crate::Result;

/// Geometry of a 2-D convolution over `[n, c, h, w]` inputs (PyTorch: `nn.Conv2d` arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    /// Input channels `c` (all groups together).
    pub in_channels: usize,
    /// Input height and width.
    pub in_hw: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Zero padding added on both sides.
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    /// Channel groups (1 = dense, `c` = depthwise).
    pub groups: usize,
}

fn out_len(
    op: &'static str,
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Result<usize> {
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err(crate::arg_err!(
            op,
            "kernel {kernel}, stride {stride} and dilation {dilation} must be positive"
        ));
    }
    // Checked, and bounded by isize::MAX: the kernels compute signed pixel coordinates up to
    // `padded`, so a geometry that overflows is an error here rather than a wrapped index.
    let too_big = || {
        crate::arg_err!(
            op,
            "input {input}, padding {pad}, kernel {kernel} and dilation {dilation} overflow"
        )
    };
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|s| s.checked_add(1))
        .filter(|&s| s <= isize::MAX as usize)
        .ok_or_else(too_big)?;
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(input))
        .filter(|&p| p <= isize::MAX as usize)
        .ok_or_else(too_big)?;
    if padded < span {
        return Err(crate::shape_err!(
            op,
            "input of size {input} with padding {pad} is smaller than the kernel's span {span} (kernel {kernel}, dilation {dilation})"
        ));
    }
    Ok((padded - span) / stride + 1)
}

impl Conv2dParams {
    /// True for a 1×1 kernel at stride 1 without padding: each output pixel reads exactly its
    /// own input pixel, so im2col (and the CPU's im2row) would be the input itself.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Output height and width: `(h + 2p - d(k-1) - 1) / s + 1`.
    pub fn out_hw(&self) -> Result<[usize; 2]> {
        Ok([
            out_len(
                "conv2d",
                self.in_hw[0],
                self.kernel[0],
                self.stride[0],
                self.padding[0],
                self.dilation[0],
            )?,
            out_len(
                "conv2d",
                self.in_hw[1],
                self.kernel[1],
                self.stride[1],
                self.padding[1],
                self.dilation[1],
            )?,
        ])
    }

    /// Rows of the im2col matrix: `c * kh * kw`.
    pub fn col_rows(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }
}

/// Geometry of max/avg pooling over `[n, c, h, w]` (floor mode, as PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolParams {
    pub in_hw: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Implicit padding on both sides: -inf for max pooling, zeros for average pooling.
    pub padding: [usize; 2],
    /// Dilation (max pooling only; average pooling requires 1).
    pub dilation: [usize; 2],
    /// Average pooling: whether padded zeros count in the divisor (PyTorch default: true).
    pub count_include_pad: bool,
}

impl PoolParams {
    /// Output height and width.
    pub fn out_hw(&self) -> Result<[usize; 2]> {
        for i in 0..2 {
            // `pad > k / 2` is `2 * pad > k` for integers, without the overflow.
            if self.padding[i] > self.kernel[i] / 2 {
                return Err(crate::arg_err!(
                    "pool2d",
                    "padding {:?} must be at most half the kernel {:?}",
                    self.padding,
                    self.kernel
                ));
            }
        }
        Ok([
            out_len(
                "pool2d",
                self.in_hw[0],
                self.kernel[0],
                self.stride[0],
                self.padding[0],
                self.dilation[0],
            )?,
            out_len(
                "pool2d",
                self.in_hw[1],
                self.kernel[1],
                self.stride[1],
                self.padding[1],
                self.dilation[1],
            )?,
        ])
    }
}

/// Geometry of a bicubic resize of `[n, c, h, w]` to `[n, c, oh, ow]`, align_corners=False.
///
/// PyTorch maps output pixel `o` to input coordinate `(o + 0.5) * r - 0.5` where
/// `r = 1/scale` if the caller passed `scale_factor` (and not `recompute_scale_factor`), else
/// `r = in/out`. DINO passes `scale_factor = (h + 0.1)/N`, so `r` differs from `in/out`:
/// keeping `scale` here is what makes positional-embedding interpolation match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResizeParams {
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
    /// The user's `scale_factor` per axis, if the size came from one.
    pub scale: Option<[f64; 2]>,
    /// `align_corners=True` maps corners to corners (`r = (in-1)/(out-1)`).
    pub align_corners: bool,
}

impl ResizeParams {
    /// The ratio `r` from output to input coordinates for axis 0 (height) or 1 (width).
    pub fn ratio(&self, axis: usize) -> f64 {
        let (i, o) = (self.in_hw[axis], self.out_hw[axis]);
        if self.align_corners {
            if o > 1 {
                (i as f64 - 1.0) / (o as f64 - 1.0)
            } else {
                0.0
            }
        } else {
            match self.scale {
                Some(s) if s[axis] > 0.0 => 1.0 / s[axis],
                _ => i as f64 / o as f64,
            }
        }
    }
}
