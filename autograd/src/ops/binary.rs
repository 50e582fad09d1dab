//! Elementwise functions of two inputs with broadcasting, `where`, and dtype casts. Every
//! gradient is computed at the broadcast shape and handed to [`reduce_to_shape`].

use super::{mask_as, masked, need, reduce_to_shape};
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, BinaryOp, CmpOp, DType, Result, Tensor};

/// Saves the inputs and output only for the ops whose derivative reads them (add and sub
/// need just the shapes), so that activations are not kept alive for nothing.
struct BinaryBackward<B: Backend> {
    op: BinaryOp,
    a: Option<Tensor<B>>,
    b: Option<Tensor<B>>,
    y: Option<Tensor<B>>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
}

/// A tensor that `Var::binary` saved for this op (a missing one is a bug here, reported as
/// an error rather than a panic).
fn saved<'a, B: Backend>(t: &'a Option<Tensor<B>>, op: &'static str) -> Result<&'a Tensor<B>> {
    t.as_ref().ok_or(tessera_tensor::Error::Argument {
        op,
        msg: "internal: a tensor the backward needs was not saved".into(),
    })
}

impl<B: Backend> BinaryBackward<B> {
    /// The share of the gradient that goes to `a` for maximum/minimum: 1 where `a` wins,
    /// 1/2 on ties (PyTorch splits ties evenly), 0 where `b` wins. `b` gets `1 - share`.
    fn share_a(&self, wins: CmpOp) -> Result<Tensor<B>> {
        let (a, b) = (saved(&self.a, "maximum")?, saved(&self.b, "maximum")?);
        let dt = a.dtype();
        let win = mask_as(&a.compare(wins, b)?, dt)?;
        let tie = mask_as(&a.eq(b)?, dt)?;
        win.add(&tie.mul_scalar(0.5)?)
    }

    /// `(dL/da, dL/db)` at the broadcast shape.
    fn grads(&self, g: &Tensor<B>, needs: &[bool]) -> Result<(Tensor<B>, Tensor<B>)> {
        let name = self.name();
        let a = || saved(&self.a, name);
        let b = || saved(&self.b, name);
        let y = || saved(&self.y, name);
        Ok(match self.op {
            BinaryOp::Add => (g.clone(), g.clone()),
            BinaryOp::Sub => (g.clone(), g.neg()?),
            BinaryOp::Mul => (g.mul(b()?)?, g.mul(a()?)?),
            // d(a/b)/db = -a/b^2 = -y/b
            BinaryOp::Div => (g.div(b()?)?, g.mul(y()?)?.div(b()?)?.neg()?),
            BinaryOp::Maximum | BinaryOp::Minimum => {
                let wins = if self.op == BinaryOp::Maximum {
                    CmpOp::Gt
                } else {
                    CmpOp::Lt
                };
                let ga = g.mul(&self.share_a(wins)?)?;
                let gb = g.sub(&ga)?;
                (ga, gb)
            }
            BinaryOp::Pow => {
                // d/da = b a^(b-1), zero where b == 0 (PyTorch, which avoids 0 * inf).
                let (a, b, y) = (a()?, b()?, y()?);
                let ga = if need(needs, 0) {
                    let d = g.mul(b)?.mul(&a.pow(&b.add_scalar(-1.0)?)?)?;
                    masked(&b.compare_scalar(CmpOp::Ne, 0.0)?, &d)?
                } else {
                    g.zeros_like()?
                };
                // d/db = y ln(a), zero where a == 0 (PyTorch's choice; the limit for b > 0).
                let gb = if need(needs, 1) {
                    let d = g.mul(y)?.mul(&a.log()?)?;
                    masked(&a.compare_scalar(CmpOp::Ne, 0.0)?, &d)?
                } else {
                    g.zeros_like()?
                };
                (ga, gb)
            }
        })
    }
}

impl<B: Backend> Backward<B> for BinaryBackward<B> {
    fn name(&self) -> &'static str {
        match self.op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::Pow => "pow",
        }
    }
    fn backward(&self, grad: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let (ga, gb) = self.grads(grad, needs)?;
        let ga = match need(needs, 0) {
            true => Some(reduce_to_shape(&ga, &self.a_shape)?),
            false => None,
        };
        let gb = match need(needs, 1) {
            true => Some(reduce_to_shape(&gb, &self.b_shape)?),
            false => None,
        };
        Ok(vec![ga, gb])
    }
}

struct WhereBackward<B: Backend> {
    cond: Tensor<B>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
}

impl<B: Backend> Backward<B> for WhereBackward<B> {
    fn name(&self) -> &'static str {
        "where"
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let zero = Tensor::scalar(0.0, g.dtype(), g.backend())?;
        // The condition may broadcast against the gradient: where_cond broadcasts all three.
        let ga = match need(needs, 0) {
            true => Some(reduce_to_shape(
                &self.cond.where_cond(g, &zero)?,
                &self.a_shape,
            )?),
            false => None,
        };
        let gb = match need(needs, 1) {
            true => Some(reduce_to_shape(
                &self.cond.where_cond(&zero, g)?,
                &self.b_shape,
            )?),
            false => None,
        };
        Ok(vec![ga, gb])
    }
}

struct CastBackward {
    from: DType,
}

impl<B: Backend> Backward<B> for CastBackward {
    fn name(&self) -> &'static str {
        "to_dtype"
    }
    fn backward(&self, grad: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![Some(grad.to_dtype(self.from)?)])
    }
}

impl<B: Backend> Var<B> {
    /// Applies any [`BinaryOp`] with broadcasting, differentiably.
    pub fn binary(&self, op: BinaryOp, other: &Var<B>) -> Result<Var<B>> {
        let (a, b) = (self.value(), other.value());
        let y = a.binary(op, b)?;
        // Which of a, b, y the derivative reads.
        let (keep_a, keep_b, keep_y) = match op {
            BinaryOp::Add | BinaryOp::Sub => (false, false, false),
            BinaryOp::Mul | BinaryOp::Maximum | BinaryOp::Minimum => (true, true, false),
            BinaryOp::Div => (false, true, true),
            BinaryOp::Pow => (true, true, true),
        };
        let bw = BinaryBackward {
            op,
            a: keep_a.then(|| a.clone()),
            b: keep_b.then(|| b.clone()),
            y: keep_y.then(|| y.clone()),
            a_shape: a.shape().to_vec(),
            b_shape: b.shape().to_vec(),
        };
        Ok(Var::from_op(
            y,
            &[self.clone(), other.clone()],
            Box::new(bw),
        ))
    }

    /// `a + b` with broadcasting.
    pub fn add(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Add, other)
    }
    /// `a - b` with broadcasting.
    pub fn sub(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Sub, other)
    }
    /// `a * b` with broadcasting.
    pub fn mul(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Mul, other)
    }
    /// `a / b` with broadcasting.
    pub fn div(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Div, other)
    }
    /// Elementwise maximum; ties split the gradient evenly (PyTorch: `torch.maximum`).
    pub fn maximum(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Maximum, other)
    }
    /// Elementwise minimum; ties split the gradient evenly (PyTorch: `torch.minimum`).
    pub fn minimum(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Minimum, other)
    }
    /// `a ^ b` elementwise (PyTorch: `torch.pow(a, b)`).
    pub fn pow(&self, other: &Var<B>) -> Result<Var<B>> {
        self.binary(BinaryOp::Pow, other)
    }

    /// `cond ? a : b` elementwise with broadcasting; `cond` is a U8 tensor (not
    /// differentiated). PyTorch: `torch.where(cond, a, b)`.
    pub fn where_cond(cond: &Tensor<B>, a: &Var<B>, b: &Var<B>) -> Result<Var<B>> {
        let y = cond.where_cond(a.value(), b.value())?;
        let bw = WhereBackward {
            cond: cond.clone(),
            a_shape: a.value().shape().to_vec(),
            b_shape: b.value().shape().to_vec(),
        };
        Ok(Var::from_op(y, &[a.clone(), b.clone()], Box::new(bw)))
    }

    /// A copy converted to `dtype`; the gradient is cast back (PyTorch: `x.to(dtype)`).
    pub fn to_dtype(&self, dtype: DType) -> Result<Var<B>> {
        let from = self.value().dtype();
        let y = self.value().to_dtype(dtype)?;
        if from == dtype {
            return Ok(self.clone());
        }
        Ok(Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(CastBackward { from }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, pos, rand};
    use crate::Var;
    use tessera_tensor::{CmpOp, DType};

    #[test]
    fn arithmetic_with_broadcasting() {
        let (a, b) = (rand(&[2, 3], 1), rand(&[3], 2));
        check(|x| x[0].add(&x[1]), &[a.clone(), b.clone()]);
        check(|x| x[0].sub(&x[1]), &[b.clone(), a.clone()]);
        check(|x| x[0].mul(&x[1]), &[a.clone(), rand(&[2, 1], 3)]);
        let d = pos(&[1, 3], 4);
        check(|x| x[0].div(&x[1]), &[a.clone(), d.clone()]);
        check(|x| x[0].div(&x[1]), &[d, a.clone()]);
        // A var used twice accumulates.
        check(|x| x[0].mul(&x[0])?.add(&x[0]), core::slice::from_ref(&a));
        // Non-contiguous inputs: a transpose and a strided slice.
        let at = rand(&[3, 2], 12).t().unwrap();
        let bs = rand(&[2, 6], 13).slice(1, 0, 6, 2).unwrap();
        check(
            |x| x[0].mul(&x[1])?.div(&x[2]),
            &[a, at, bs.abs().unwrap().add_scalar(0.5).unwrap()],
        );
    }

    #[test]
    fn maximum_minimum_and_pow() {
        let (a, b) = (rand(&[3, 4], 5), rand(&[4], 6));
        check(|x| x[0].maximum(&x[1]), &[a.clone(), b.clone()]);
        check(|x| x[0].minimum(&x[1]), &[a, b]);
        check(|x| x[0].pow(&x[1]), &[pos(&[2, 3], 7), rand(&[2, 1], 8)]);
    }

    #[test]
    fn ties_split_evenly() {
        let t = rand(&[3], 9);
        let (a, b) = (Var::leaf(t.clone()), Var::leaf(t));
        let g = a
            .maximum(&b)
            .unwrap()
            .sum(&[], false)
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(g.get(&a).unwrap().to_vec::<f64>().unwrap(), [0.5; 3]);
        assert_eq!(g.get(&b).unwrap().to_vec::<f64>().unwrap(), [0.5; 3]);
    }

    #[test]
    fn where_and_cast() {
        let (a, b) = (rand(&[2, 3], 10), rand(&[3], 11));
        let cond = rand(&[2, 1], 12).compare_scalar(CmpOp::Gt, 0.0).unwrap();
        let cond = cond.broadcast_to(&[2, 3]).unwrap().contiguous().unwrap();
        check(|x| Var::where_cond(&cond, &x[0], &x[1]), &[a.clone(), b]);
        // f32 is too coarse for finite differences: check the cast back by hand.
        let x = Var::leaf(a);
        let y = x.to_dtype(DType::F32).unwrap().mul_scalar(3.0).unwrap();
        let g = y.sum(&[], false).unwrap().backward().unwrap();
        assert_eq!(g.get(&x).unwrap().to_vec::<f64>().unwrap(), [3.0; 6]);
    }
}
