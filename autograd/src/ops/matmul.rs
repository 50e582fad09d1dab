//! Matrix products with broadcast batch dims. A 1-D operand is promoted to a matrix with a
//! differentiable `unsqueeze` (and the extra dim squeezed away), so the backward only ever
//! sees `[.., m, k] @ [.., k, n]`: `dA = dC @ Bᵀ`, `dB = Aᵀ @ dC`, each summed over the batch
//! dims its operand was broadcast along.

use super::{need, reduce_to_shape};
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Result, Tensor};

struct MatmulBackward<B: Backend> {
    a: Tensor<B>,
    b: Tensor<B>,
}

impl<B: Backend> Backward<B> for MatmulBackward<B> {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let ga = match need(needs, 0) {
            true => Some(reduce_to_shape(
                &grad.matmul(&self.b.t()?)?,
                self.a.shape(),
            )?),
            false => None,
        };
        let gb = match need(needs, 1) {
            true => Some(reduce_to_shape(&self.a.t()?.matmul(grad)?, self.b.shape())?),
            false => None,
        };
        Ok(vec![ga, gb])
    }
}

impl<B: Backend> Var<B> {
    /// `self @ other` with broadcast batch dims; 1-D operands as in `torch.matmul`.
    pub fn matmul(&self, other: &Var<B>) -> Result<Var<B>> {
        let (ra, rb) = (self.value().rank(), other.value().rank());
        if ra == 0 || rb == 0 {
            // Let the tensor op report the shapes.
            self.value().matmul(other.value())?;
        }
        let a = if ra == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rb == 1 {
            other.unsqueeze(-1)?
        } else {
            other.clone()
        };
        let y = a.value().matmul(b.value())?;
        let bw = MatmulBackward {
            a: a.value().clone(),
            b: b.value().clone(),
        };
        let mut out = Var::from_op(y, &[a, b], Box::new(bw));
        if rb == 1 {
            out = out.squeeze(-1)?;
        }
        if ra == 1 {
            out = out.squeeze(-1 - (rb != 1) as isize)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};

    #[test]
    fn matrices_and_batches() {
        check(
            |v| v[0].matmul(&v[1]),
            &[rand(&[2, 3], 1), rand(&[3, 4], 2)],
        );
        // Batch dims broadcast: [2, 1, 2, 3] @ [3, 3, 2].
        check(
            |v| v[0].matmul(&v[1]),
            &[rand(&[2, 1, 2, 3], 3), rand(&[3, 3, 2], 4)],
        );
    }

    #[test]
    fn vectors() {
        check(|v| v[0].matmul(&v[1]), &[rand(&[3], 5), rand(&[3, 2], 6)]);
        check(|v| v[0].matmul(&v[1]), &[rand(&[2, 3], 7), rand(&[3], 8)]);
        check(|v| v[0].matmul(&v[1]), &[rand(&[3], 9), rand(&[3], 10)]);
        check(
            |v| v[0].matmul(&v[1]),
            &[rand(&[4], 11), rand(&[2, 4, 3], 12)],
        );
    }

    #[test]
    fn transposed_inputs() {
        check(
            |v| v[0].t()?.matmul(&v[1]),
            &[rand(&[3, 2], 13), rand(&[3, 2], 14)],
        );
    }
}
