//! Elementwise functions of two tensors with NumPy broadcasting (PyTorch: `a + b`,
//! `torch.maximum`, `a < b`, `torch.where`). Inputs must share dtype and backend; there is no
//! implicit type promotion, so a mix-up is an error rather than a silent upcast.

pub(crate) mod cpu;

use crate::backend::{Backend, BinaryOp, CmpOp};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::shape::broadcast_shapes;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Broadcast layouts of two tensors and the result shape, after dtype/backend checks.
    fn broadcast_pair(
        &self,
        op: &'static str,
        other: &Self,
    ) -> Result<(Layout, Layout, crate::shape::Dims)> {
        self.check_same_backend(op, other)?;
        self.check_same_dtype(op, other)?;
        let shape = broadcast_shapes(op, self.shape(), other.shape())?;
        Ok((
            self.layout().broadcast_to(&shape)?,
            other.layout().broadcast_to(&shape)?,
            shape,
        ))
    }

    /// Applies any [`BinaryOp`] with broadcasting.
    pub fn binary(&self, op: BinaryOp, other: &Self) -> Result<Self> {
        let name = "binary";
        self.check_float(name)?;
        let (al, bl, shape) = self.broadcast_pair(name, other)?;
        let s = self
            .backend()
            .binary(op, self.storage(), &al, other.storage(), &bl)?;
        Ok(Self::from_storage(s, &shape, self.backend()))
    }

    /// `a + b`
    pub fn add(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Add, other)
    }
    /// `a - b`
    pub fn sub(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Sub, other)
    }
    /// `a * b`
    pub fn mul(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Mul, other)
    }
    /// `a / b`
    pub fn div(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Div, other)
    }
    /// Elementwise maximum, NaN-propagating (PyTorch: `torch.maximum`).
    pub fn maximum(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Maximum, other)
    }
    /// Elementwise minimum, NaN-propagating (PyTorch: `torch.minimum`).
    pub fn minimum(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Minimum, other)
    }
    /// `a ^ b` elementwise (PyTorch: `torch.pow(a, b)`).
    pub fn pow(&self, other: &Self) -> Result<Self> {
        self.binary(BinaryOp::Pow, other)
    }

    /// Applies any [`CmpOp`] with broadcasting; the result is U8 (0/1).
    pub fn compare(&self, op: CmpOp, other: &Self) -> Result<Self> {
        let (al, bl, shape) = self.broadcast_pair("compare", other)?;
        let s = self
            .backend()
            .compare(op, self.storage(), &al, other.storage(), &bl)?;
        Ok(Self::from_storage(s, &shape, self.backend()))
    }

    /// `a == b` as U8.
    pub fn eq(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Eq, other)
    }
    /// `a != b` as U8.
    pub fn ne(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Ne, other)
    }
    /// `a < b` as U8.
    pub fn lt(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Lt, other)
    }
    /// `a <= b` as U8.
    pub fn le(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Le, other)
    }
    /// `a > b` as U8.
    pub fn gt(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Gt, other)
    }
    /// `a >= b` as U8.
    pub fn ge(&self, other: &Self) -> Result<Self> {
        self.compare(CmpOp::Ge, other)
    }

    /// Compares every element with a scalar (converted to this tensor's dtype).
    pub fn compare_scalar(&self, op: CmpOp, value: f64) -> Result<Self> {
        let s = Tensor::scalar(value, self.dtype(), self.backend())?;
        self.compare(op, &s)
    }

    /// `cond ? a : b` elementwise, all three broadcast together; `self` is the U8 condition
    /// (PyTorch: `torch.where(cond, a, b)`).
    pub fn where_cond(&self, a: &Self, b: &Self) -> Result<Self> {
        let op = "where";
        self.check_dtype(op, DType::U8)?;
        self.check_same_backend(op, a)?;
        let (_, _, ab) = a.broadcast_pair(op, b)?;
        let shape = broadcast_shapes(op, self.shape(), &ab)?;
        let (cl, al, bl) = (
            self.layout().broadcast_to(&shape)?,
            a.layout().broadcast_to(&shape)?,
            b.layout().broadcast_to(&shape)?,
        );
        let s =
            self.backend()
                .where_cond(self.storage(), &cl, a.storage(), &al, b.storage(), &bl)?;
        Ok(Self::from_storage(s, &shape, self.backend()))
    }

    /// A contiguous copy converted to `dtype` (PyTorch: `x.to(dtype)`); a cheap clone if the
    /// dtype is already `dtype`.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let s = self.backend().cast(self.storage(), self.layout(), dtype)?;
        Ok(Self::from_storage(s, self.shape(), self.backend()))
    }
}
