//! Indexing by I64 index tensors (not differentiated). `index_select` and `gather` read
//! elements, so their backward adds the gradient back at the read positions with
//! `scatter_add` (repeated indices accumulate); `scatter_add` is the adjoint of `gather`.

use super::embed;
use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::shape::normalize_axis;
use tessera_tensor::{Backend, Result, Tensor};

enum Indexing {
    /// `index` is 1-D; it is broadcast along the other dims to read like `gather`.
    Select,
    Gather,
}

struct ReadBackward<B: Backend> {
    kind: Indexing,
    axis: usize,
    index: Tensor<B>,
    in_shape: Vec<usize>,
}

impl<B: Backend> Backward<B> for ReadBackward<B> {
    fn name(&self) -> &'static str {
        match self.kind {
            Indexing::Select => "index_select",
            Indexing::Gather => "gather",
        }
    }
    fn backward(&self, g: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let index = match self.kind {
            Indexing::Gather => self.index.clone(),
            Indexing::Select => {
                let mut shape = vec![1; g.rank()];
                shape[self.axis] = self.index.numel();
                self.index.reshape(&shape)?.broadcast_to(g.shape())?
            }
        };
        let zeros = Tensor::zeros(&self.in_shape, g.dtype(), g.backend())?;
        let dx = zeros.scatter_add(self.axis as isize, &index, g)?;
        Ok(vec![Some(dx)])
    }
}

struct ScatterAddBackward<B: Backend> {
    axis: isize,
    index: Tensor<B>,
    src_shape: Vec<usize>,
}

impl<B: Backend> Backward<B> for ScatterAddBackward<B> {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let g_self = needs.first().copied().unwrap_or(false).then(|| g.clone());
        let g_src = if needs.get(1).copied().unwrap_or(false) {
            let picked = g.gather(self.axis, &self.index)?;
            // Only the positions of `index` were read from `src`: the rest get zero.
            let dims: Vec<usize> = self.index.shape().to_vec();
            Some(embed(&picked, &self.src_shape, |l| {
                let mut l = l.clone();
                for (axis, &len) in dims.iter().enumerate() {
                    l = l.narrow(axis, 0, len)?;
                }
                Ok(l)
            })?)
        } else {
            None
        };
        Ok(vec![g_self, g_src])
    }
}

impl<B: Backend> Var<B> {
    fn read_record(
        &self,
        y: Tensor<B>,
        kind: Indexing,
        axis: isize,
        index: &Tensor<B>,
    ) -> Result<Var<B>> {
        let axis = normalize_axis("index", axis, self.value().rank())?;
        let bw = ReadBackward {
            kind,
            axis,
            index: index.clone(),
            in_shape: self.value().shape().to_vec(),
        };
        Ok(Var::from_op(y, core::slice::from_ref(self), Box::new(bw)))
    }

    /// `out[.., i, ..] = self[.., index[i], ..]` along `axis`; `index` is 1-D I64.
    pub fn index_select(&self, axis: isize, index: &Tensor<B>) -> Result<Var<B>> {
        let y = self.value().index_select(axis, index)?;
        self.read_record(y, Indexing::Select, axis, index)
    }

    /// `out[p] = self[p with p[axis] = index[p]]` (PyTorch: `torch.gather`).
    pub fn gather(&self, axis: isize, index: &Tensor<B>) -> Result<Var<B>> {
        let y = self.value().gather(axis, index)?;
        self.read_record(y, Indexing::Gather, axis, index)
    }

    /// `self` with `src[p]` added at `p with p[axis] = index[p]` (PyTorch: out-of-place
    /// `scatter_add`); differentiable in both `self` and `src`.
    pub fn scatter_add(&self, axis: isize, index: &Tensor<B>, src: &Var<B>) -> Result<Var<B>> {
        let y = self.value().scatter_add(axis, index, src.value())?;
        let bw = ScatterAddBackward {
            axis,
            index: index.clone(),
            src_shape: src.value().shape().to_vec(),
        };
        Ok(Var::from_op(y, &[self.clone(), src.clone()], Box::new(bw)))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};
    use tessera_tensor::{Cpu, Tensor};

    fn idx(v: &[i64], shape: &[usize]) -> Tensor<Cpu> {
        Tensor::from_slice(v, shape, &Cpu).unwrap()
    }

    // These need the tensor crate's index kernels (being written in parallel).
    #[test]
    fn index_select_with_repeats() {
        let i = idx(&[2, 0, 2], &[3]);
        check(|v| v[0].index_select(1, &i), &[rand(&[2, 4, 2], 1)]);
        check(|v| v[0].index_select(0, &i), &[rand(&[3, 2], 2)]);
    }

    #[test]
    fn gather_and_scatter_add() {
        let i = idx(&[1, 0, 1, 2, 2, 0], &[2, 3]);
        check(|v| v[0].gather(1, &i), &[rand(&[2, 3], 3)]);
        check(
            |v| v[0].gather(0, &idx(&[1, 0, 1], &[1, 3])),
            &[rand(&[2, 3], 4)],
        );
        check(
            |v| v[0].scatter_add(1, &i, &v[1]),
            &[rand(&[2, 4], 5), rand(&[2, 3], 6)],
        );
        // src larger than index: its extra elements are unused and get zero gradient.
        let i2 = idx(&[3, 1], &[1, 2]);
        check(
            |v| v[0].scatter_add(1, &i2, &v[1]),
            &[rand(&[2, 4], 7), rand(&[2, 3], 8)],
        );
    }
}
