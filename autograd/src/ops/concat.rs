//! Joining and splitting along an axis. `cat`'s backward narrows the gradient into one piece
//! per input and `stack`'s selects; `split` and `chunk` are built from differentiable
//! `narrow`s, so they need no backward of their own.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec::Vec;
use tessera_tensor::shape::normalize_axis;
use tessera_tensor::{Backend, Error, Result, Tensor};

struct CatBackward {
    axis: usize,
    /// Each input's extent along `axis`; `None` for `stack` (each input is one index).
    lens: Option<Vec<usize>>,
    count: usize,
}

impl<B: Backend> Backward<B> for CatBackward {
    fn name(&self) -> &'static str {
        if self.lens.is_some() {
            "cat"
        } else {
            "stack"
        }
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let axis = self.axis as isize;
        let mut out = Vec::with_capacity(self.count);
        let mut start = 0;
        for i in 0..self.count {
            let wanted = needs.get(i).copied().unwrap_or(false);
            out.push(match (&self.lens, wanted) {
                (_, false) => None,
                (Some(lens), true) => Some(g.narrow(axis, start, lens[i])?),
                (None, true) => Some(g.select(axis, i)?),
            });
            if let Some(lens) = &self.lens {
                start += lens[i];
            }
        }
        Ok(out)
    }
}

fn values<B: Backend>(vars: &[Var<B>]) -> Vec<Tensor<B>> {
    vars.iter().map(|v| v.value().clone()).collect()
}

impl<B: Backend> Var<B> {
    /// Concatenates along `axis` (PyTorch: `torch.cat`).
    pub fn cat(vars: &[Var<B>], axis: isize) -> Result<Var<B>> {
        let y = Tensor::cat(&values(vars), axis)?;
        let axis = normalize_axis("cat", axis, y.rank())?;
        let lens = vars.iter().map(|v| v.value().shape()[axis]).collect();
        let bw = CatBackward {
            axis,
            lens: Some(lens),
            count: vars.len(),
        };
        Ok(Var::from_op(y, vars, Box::new(bw)))
    }

    /// Stacks equal-shaped vars along a new `axis` (PyTorch: `torch.stack`).
    pub fn stack(vars: &[Var<B>], axis: isize) -> Result<Var<B>> {
        let y = Tensor::stack(&values(vars), axis)?;
        let axis = normalize_axis("stack", axis, y.rank())?;
        let bw = CatBackward {
            axis,
            lens: None,
            count: vars.len(),
        };
        Ok(Var::from_op(y, vars, Box::new(bw)))
    }

    /// Pieces of the given sizes along `axis`, which must add up to its length.
    pub fn split_sizes(&self, sizes: &[usize], axis: isize) -> Result<Vec<Var<B>>> {
        let a = normalize_axis("split", axis, self.value().rank())?;
        let d = self.value().shape()[a];
        if sizes.iter().sum::<usize>() != d {
            return Err(Error::Shape {
                op: "split",
                msg: alloc::format!(
                    "sizes {sizes:?} do not add up to dim {a} of {:?}",
                    self.value().shape()
                ),
            });
        }
        let mut start = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &len in sizes {
            out.push(self.narrow(axis, start, len)?);
            start += len;
        }
        Ok(out)
    }

    /// Consecutive pieces of `size` along `axis`; the last may be smaller.
    pub fn split(&self, size: usize, axis: isize) -> Result<Vec<Var<B>>> {
        let a = normalize_axis("split", axis, self.value().rank())?;
        let d = self.value().shape()[a];
        if size == 0 {
            return Err(Error::Argument {
                op: "split",
                msg: alloc::format!("size must be positive (shape {:?})", self.value().shape()),
            });
        }
        let mut sizes: Vec<usize> = alloc::vec![size; d / size];
        if d % size != 0 || d == 0 {
            sizes.push(d % size);
        }
        self.split_sizes(&sizes, axis)
    }

    /// At most `n` nearly equal pieces along `axis` (PyTorch: `chunk`).
    pub fn chunk(&self, n: usize, axis: isize) -> Result<Vec<Var<B>>> {
        let a = normalize_axis("chunk", axis, self.value().rank())?;
        if n == 0 {
            return Err(Error::Argument {
                op: "chunk",
                msg: "the number of chunks must be positive".into(),
            });
        }
        let d = self.value().shape()[a];
        self.split(d.div_ceil(n).max(1), axis)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};
    use crate::Var;

    #[test]
    fn split_and_chunk_pieces() {
        let x = rand(&[5, 2], 1);
        let weigh = |pieces: Vec<Var<_>>| -> tessera_tensor::Result<Var<_>> {
            let mut acc = pieces[0].sum(&[], false)?;
            for (i, p) in pieces.iter().enumerate().skip(1) {
                acc = acc.add(&p.square()?.mul_scalar(i as f64)?.sum(&[], false)?)?;
            }
            Ok(acc)
        };
        check(|v| weigh(v[0].split(2, 0)?), core::slice::from_ref(&x));
        check(
            |v| weigh(v[0].split_sizes(&[1, 4], 0)?),
            core::slice::from_ref(&x),
        );
        check(|v| weigh(v[0].chunk(3, 0)?), core::slice::from_ref(&x));
        check(|v| weigh(v[0].chunk(2, -1)?), core::slice::from_ref(&x));
        assert_eq!(Var::constant(x.clone()).chunk(3, 0).unwrap().len(), 3);
        assert!(Var::constant(x).split_sizes(&[1, 1], 0).is_err());
    }

    // These need the tensor crate's cat/stack (being written in parallel).
    #[test]
    fn cat_and_stack() {
        let (a, b) = (rand(&[2, 3], 2), rand(&[2, 1], 3));
        check(
            |v| Var::cat(&[v[0].clone(), v[1].clone(), v[0].clone()], 1),
            &[a.clone(), b],
        );
        check(
            |v| Var::stack(&[v[0].clone(), v[1].clone()], 1),
            &[a.clone(), rand(&[2, 3], 4)],
        );
    }
}
