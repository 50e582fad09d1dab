//! 2-D convolution (PyTorch: `F.conv2d`) and the two products its backward pass needs.
//!
//! The default is im2col + batched GEMM per group (see `backend/composite.rs`): the input's
//! patches become the columns of a `[c*kh*kw, oh*ow]` matrix per image, and the convolution is
//! the weight matrix times it. The input gradient is the transposed product followed by
//! col2im (the adjoint of im2col); the weight gradient is the output gradient times the
//! columns, summed over the batch. The CPU backend overrides the three with one GEMM over the
//! whole batch each, the patches as rows (`rows.rs`).

pub(crate) mod cpu;
mod general;
mod pointwise;
pub(crate) mod rows;

use crate::backend::Backend;
pub use crate::backend::Conv2dParams;
use crate::{Result, Tensor};

/// Stride, padding, dilation and groups of a convolution (PyTorch's keyword arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvOptions {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl Default for ConvOptions {
    fn default() -> Self {
        ConvOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl ConvOptions {
    /// Stride `s` and padding `p` on both axes, dilation 1, one group.
    pub fn new(stride: usize, padding: usize) -> Self {
        ConvOptions {
            stride: [stride, stride],
            padding: [padding, padding],
            ..Default::default()
        }
    }
}

impl<B: Backend> Tensor<B> {
    /// Validates `x: [n, c, h, w]` against `w: [oc, c/groups, kh, kw]` and builds the params.
    pub fn conv2d_params(&self, weight_shape: &[usize], o: &ConvOptions) -> Result<Conv2dParams> {
        let op = "conv2d";
        if self.rank() != 4 || weight_shape.len() != 4 {
            return Err(crate::shape_err!(
                op,
                "input {:?} and weight {weight_shape:?} must both be rank 4",
                self.shape()
            ));
        }
        let (c, g) = (self.shape()[1], o.groups);
        if g == 0 || c % g != 0 || weight_shape[0] % g != 0 {
            return Err(crate::shape_err!(
                op,
                "groups {g} must divide input channels {c} and output channels {}",
                weight_shape[0]
            ));
        }
        if weight_shape[1] * g != c {
            return Err(crate::shape_err!(
                op,
                "input {:?} has {c} channels but weight {weight_shape:?} expects {} x {g} groups",
                self.shape(),
                weight_shape[1]
            ));
        }
        let p = Conv2dParams {
            in_channels: c,
            in_hw: [self.shape()[2], self.shape()[3]],
            kernel: [weight_shape[2], weight_shape[3]],
            stride: o.stride,
            padding: o.padding,
            dilation: o.dilation,
            groups: g,
        };
        p.out_hw()?;
        Ok(p)
    }

    /// `conv2d(x, weight, bias)` with `x: [n, c, h, w]`, `weight: [oc, c/groups, kh, kw]`,
    /// `bias: [oc]`; returns `[n, oc, oh, ow]`.
    pub fn conv2d(&self, weight: &Self, bias: Option<&Self>, o: &ConvOptions) -> Result<Self> {
        let op = "conv2d";
        self.check_float(op)?;
        self.check_same_dtype(op, weight)?;
        self.check_same_backend(op, weight)?;
        let p = self.conv2d_params(weight.shape(), o)?;
        let y = self.backend().conv2d(self, weight, &p)?;
        match bias {
            None => Ok(y),
            Some(b) => {
                if b.shape() != [weight.shape()[0]] {
                    return Err(crate::shape_err!(
                        op,
                        "bias has shape {:?}, expected [{}]",
                        b.shape(),
                        weight.shape()[0]
                    ));
                }
                y.add(&b.reshape(&[1, weight.shape()[0], 1, 1])?)
            }
        }
    }

    /// The input gradient of a convolution: `self` is the output gradient `[n, oc, oh, ow]`.
    pub fn conv2d_backward_input(&self, weight: &Self, p: &Conv2dParams) -> Result<Self> {
        self.backend().conv2d_backward_input(self, weight, p)
    }

    /// The weight gradient of a convolution of `input`: `self` is the output gradient.
    pub fn conv2d_backward_weight(&self, input: &Self, p: &Conv2dParams) -> Result<Self> {
        self.backend().conv2d_backward_weight(input, self, p)
    }
}
