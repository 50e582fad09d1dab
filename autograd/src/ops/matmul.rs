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
            true if transposed_matrix(&self.b) && self.a.rank() == 2 => {
                // `b` is a view `wᵀ` of a row-major `w` (a linear layer's weight): compute
                // `(dCᵀ a)ᵀ`, whose storage is row-major in `w`'s layout, so the gradient
                // reaching `w` through the transpose needs no transposing copy. Each element
                // is the same sum in the same order as in `aᵀ dC` (a product's two factors
                // commute), so the values do not change.
                Some(grad.t()?.matmul(&self.a)?.t()?)
            }
            true => Some(reduce_to_shape(&self.a.t()?.matmul(grad)?, self.b.shape())?),
            false => None,
        };
        Ok(vec![ga, gb])
    }
}

/// Whether `t` is a 2-D view that is the transpose of a row-major matrix, and not itself
/// row-major.
fn transposed_matrix<B: Backend>(t: &Tensor<B>) -> bool {
    let (shape, strides) = (t.shape(), t.layout().strides());
    t.rank() == 2 && !t.is_contiguous() && strides[0] == 1 && strides[1] == shape[0]
}

/// `a @ b + bias`: the product's gradients, and the bias's, the output gradient summed over
/// every row (as the separate `add`'s backward computes them).
struct MatmulBiasBackward<B: Backend> {
    product: MatmulBackward<B>,
    n: usize,
}

impl<B: Backend> Backward<B> for MatmulBiasBackward<B> {
    fn name(&self) -> &'static str {
        "matmul_bias"
    }
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let (a, b) = (&self.product.a, &self.product.b);
        let linear = transposed_matrix(b) && a.rank() == 2 && grad.rank() == 2;
        if linear && need(needs, 1) && need(needs, 2) {
            // A linear layer's `x @ wᵀ + bias`: `w`'s gradient `dYᵀ x` (in `w`'s layout, as
            // `MatmulBackward` computes it) and the bias's `dY.sum(0)`, the row sums of the
            // same `dYᵀ`, from one call, so a backend can sum them while it reads `dYᵀ` for
            // the product (the CPU does, with the separate sum's bits).
            let mut grads = self.product.backward(grad, &[need(needs, 0), false])?;
            let (w_grad, bias_grad) = grad.t()?.matmul_row_sums(a)?;
            grads[1] = Some(w_grad.t()?);
            grads.push(Some(bias_grad));
            return Ok(grads);
        }
        let mut grads = self.product.backward(grad, needs)?;
        grads.push(match need(needs, 2) {
            true => Some(reduce_to_shape(grad, &[self.n])?),
            false => None,
        });
        Ok(grads)
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

    /// `self @ other + bias` (PyTorch: `addmm`, a linear layer's forward): `self: [.., m,
    /// k]`, `other: [.., k, n]` (rank >= 2 each), `bias: [n]` added to every row. The same
    /// values and gradients as `self.matmul(other)?.add(bias)`, in one graph node; the CPU
    /// backend adds the bias inside its GEMM ([`Tensor::matmul_bias`]).
    pub fn matmul_bias(&self, other: &Var<B>, bias: &Var<B>) -> Result<Var<B>> {
        let y = self.value().matmul_bias(other.value(), bias.value())?;
        let bw = MatmulBiasBackward {
            product: MatmulBackward {
                a: self.value().clone(),
                b: other.value().clone(),
            },
            n: bias.value().shape()[0],
        };
        Ok(Var::from_op(
            y,
            &[self.clone(), other.clone(), bias.clone()],
            Box::new(bw),
        ))
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
    fn with_bias() {
        check(
            |v| v[0].matmul_bias(&v[1].t()?, &v[2]),
            &[rand(&[4, 3], 15), rand(&[5, 3], 16), rand(&[5], 17)],
        );
        check(
            |v| v[0].matmul_bias(&v[1], &v[2]),
            &[rand(&[2, 3, 4], 18), rand(&[4, 2], 19), rand(&[2], 20)],
        );
        // Batched weight: the composition inside the backend, same gradients.
        check(
            |v| v[0].matmul_bias(&v[1], &v[2]),
            &[rand(&[2, 3, 4], 21), rand(&[2, 4, 2], 22), rand(&[2], 23)],
        );
    }

    /// `x @ wᵀ` (a linear layer without bias): the gradients by finite differences, and the
    /// weight's gradient handed back in `w`'s own row-major layout (a transposed view of it
    /// for `wᵀ`), with the values of `xᵀ dY`.
    #[test]
    fn transposed_weight_gradient_is_in_the_weights_layout() {
        use crate::Backward;
        check(
            |v| v[0].matmul(&v[1].t()?),
            &[rand(&[4, 3], 24), rand(&[5, 3], 25)],
        );
        let (x, w, g) = (rand(&[4, 3], 26), rand(&[5, 3], 27), rand(&[4, 5], 28));
        let bw = super::MatmulBackward {
            a: x.clone(),
            b: w.t().unwrap(),
        };
        let grads = bw.backward(&g, &[true, true]).unwrap();
        let gb = grads[1].as_ref().unwrap();
        assert_eq!(gb.shape(), &[3, 5]);
        assert!(!gb.is_contiguous() && gb.t().unwrap().is_contiguous());
        let want = x.t().unwrap().matmul(&g).unwrap();
        assert_eq!(gb.to_vec::<f64>().unwrap(), want.to_vec::<f64>().unwrap());
    }

    /// In f32, on the CPU's fused path: the same bits as the separate product and add, forward
    /// and backward.
    #[test]
    fn with_bias_is_the_composition_bit_for_bit() {
        use crate::Var;
        use tessera_tensor::{Cpu, DType, Rng, Tensor};
        let mut rng = Rng::new(7);
        let mut randn =
            |s: &[usize]| Tensor::randn(s, 0.0, 1.0, DType::F32, &mut rng, &Cpu).unwrap();
        let (x, w, b, up) = (
            randn(&[3, 50, 96]),
            randn(&[70, 96]),
            randn(&[70]),
            randn(&[3, 50, 70]),
        );
        let bits = |t: &Tensor<Cpu>| -> alloc::vec::Vec<u32> {
            t.to_vec::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        let run = |fused: bool| {
            let (xv, wv, bv) = (
                Var::leaf(x.clone()),
                Var::leaf(w.clone()),
                Var::leaf(b.clone()),
            );
            let wt = wv.t().unwrap();
            let y = if fused {
                xv.matmul_bias(&wt, &bv).unwrap()
            } else {
                xv.matmul(&wt).unwrap().add(&bv).unwrap()
            };
            let g = y.backward_with(&up).unwrap();
            let grads = [&xv, &wv, &bv].map(|v| bits(g.get(v).unwrap()));
            (bits(y.value()), grads)
        };
        assert_eq!(run(true), run(false));
    }

    #[test]
    fn transposed_inputs() {
        check(
            |v| v[0].t()?.matmul(&v[1]),
            &[rand(&[3, 2], 13), rand(&[3, 2], 14)],
        );
    }
}
