//! Pooling. Each backward is the backend's adjoint: max pooling routes the gradient to the
//! saved argmax indices, average pooling spreads it over each window.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Pool2dOptions, PoolParams, Result, Tensor};

enum Pool<B: Backend> {
    /// The I64 flat index of each maximum in its input plane.
    Max {
        indices: Tensor<B>,
    },
    Avg {
        p: PoolParams,
    },
    Adaptive,
}

struct PoolBackward<B: Backend> {
    pool: Pool<B>,
    in_hw: [usize; 2],
}

impl<B: Backend> Backward<B> for PoolBackward<B> {
    fn name(&self) -> &'static str {
        match self.pool {
            Pool::Max { .. } => "max_pool2d",
            Pool::Avg { .. } => "avg_pool2d",
            Pool::Adaptive => "adaptive_avg_pool2d",
        }
    }
    fn backward(&self, g: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let dx = match &self.pool {
            Pool::Max { indices } => g.max_pool2d_backward(indices, self.in_hw)?,
            Pool::Avg { p } => g.avg_pool2d_backward(p)?,
            Pool::Adaptive => g.adaptive_avg_pool2d_backward(self.in_hw)?,
        };
        Ok(vec![Some(dx)])
    }
}

/// `[h, w]` of an `[n, c, h, w]` tensor (checked, so a bad shape is never an index panic).
pub(crate) fn spatial_size<B: Backend>(x: &Tensor<B>) -> Result<[usize; 2]> {
    match x.shape() {
        &[_, _, h, w] => Ok([h, w]),
        s => Err(tessera_tensor::Error::Shape {
            op: "pool2d",
            msg: alloc::format!("needs an [n, c, h, w] input, got {s:?}"),
        }),
    }
}

impl<B: Backend> Var<B> {
    fn pool_record(&self, y: Tensor<B>, pool: Pool<B>) -> Result<Var<B>> {
        let in_hw = spatial_size(self.value())?;
        let bw = PoolBackward { pool, in_hw };
        Ok(Var::from_op(y, core::slice::from_ref(self), Box::new(bw)))
    }

    /// Max pooling over `[n, c, h, w]` (PyTorch: `F.max_pool2d`).
    pub fn max_pool2d(&self, opts: &Pool2dOptions) -> Result<Var<B>> {
        let (y, indices) = self.value().max_pool2d(opts)?;
        self.pool_record(y, Pool::Max { indices })
    }

    /// Average pooling (PyTorch: `F.avg_pool2d`).
    pub fn avg_pool2d(&self, opts: &Pool2dOptions) -> Result<Var<B>> {
        let y = self.value().avg_pool2d(opts)?;
        let p = self.value().pool2d_params(opts)?;
        self.pool_record(y, Pool::Avg { p })
    }

    /// Adaptive average pooling to `out_hw` (PyTorch: `F.adaptive_avg_pool2d`).
    pub fn adaptive_avg_pool2d(&self, out_hw: [usize; 2]) -> Result<Var<B>> {
        let y = self.value().adaptive_avg_pool2d(out_hw)?;
        self.pool_record(y, Pool::Adaptive)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};
    use tessera_tensor::Pool2dOptions;

    // These need the tensor crate's pooling kernels (being written in parallel).
    #[test]
    fn max_pool() {
        let x = rand(&[2, 2, 5, 5], 1);
        check(|v| v[0].max_pool2d(&Pool2dOptions::new(3, 2, 1)), &[x]);
    }

    #[test]
    fn avg_pools() {
        let x = rand(&[2, 2, 5, 5], 2);
        let mut o = Pool2dOptions::new(3, 2, 1);
        check(|v| v[0].avg_pool2d(&o), core::slice::from_ref(&x));
        o.count_include_pad = false;
        check(|v| v[0].avg_pool2d(&o), core::slice::from_ref(&x));
        check(
            |v| v[0].adaptive_avg_pool2d([2, 3]),
            core::slice::from_ref(&x),
        );
        check(|v| v[0].adaptive_avg_pool2d([1, 1]), &[x]);
    }
}
