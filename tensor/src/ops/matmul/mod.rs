//! Matrix products with broadcast batch dims (PyTorch: `torch.matmul`, `@`).

pub mod bias;
pub mod cpu;
pub mod row_sums;

use crate::backend::Backend;
use crate::shape::broadcast_shapes;
use crate::{Result, Tensor};
use alloc::vec::Vec;

impl<B: Backend> Tensor<B> {
    /// `self @ other`. Shapes `[.., m, k] @ [.., k, n] -> [.., m, n]` with the batch dims
    /// broadcast; a 1-D operand is treated as a row (left) or column (right) vector whose dim
    /// is removed from the result, as in `torch.matmul`.
    pub fn matmul(&self, other: &Self) -> Result<Self> {
        let op = "matmul";
        self.check_same_backend(op, other)?;
        self.check_same_dtype(op, other)?;
        self.check_float(op)?;
        if self.rank() == 0 || other.rank() == 0 {
            return Err(crate::shape_err!(
                op,
                "both operands need rank >= 1, got {:?} and {:?}",
                self.shape(),
                other.shape()
            ));
        }
        let a = if self.rank() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if other.rank() == 1 {
            other.unsqueeze(-1)?
        } else {
            other.clone()
        };
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k, k2, n) = (
            a.shape()[ra - 2],
            a.shape()[ra - 1],
            b.shape()[rb - 2],
            b.shape()[rb - 1],
        );
        if k != k2 {
            return Err(crate::shape_err!(
                op,
                "{:?} @ {:?}: inner dims {k} and {k2} differ",
                self.shape(),
                other.shape()
            ));
        }
        let batch = broadcast_shapes(op, &a.shape()[..ra - 2], &b.shape()[..rb - 2])?;
        let mut a_shape: Vec<usize> = batch.to_vec();
        a_shape.extend_from_slice(&[m, k]);
        let mut b_shape: Vec<usize> = batch.to_vec();
        b_shape.extend_from_slice(&[k, n]);
        let (al, bl) = (
            a.layout().broadcast_to(&a_shape)?,
            b.layout().broadcast_to(&b_shape)?,
        );
        let s = self.backend().matmul(a.storage(), &al, b.storage(), &bl)?;
        let mut out_shape = batch.to_vec();
        out_shape.extend_from_slice(&[m, n]);
        let mut out = Self::from_storage(s, &out_shape, self.backend());
        if self.rank() == 1 {
            out = out.squeeze(-2)?;
        }
        if other.rank() == 1 {
            out = out.squeeze(-1)?;
        }
        Ok(out)
    }
}
