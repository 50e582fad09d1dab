//! Bicubic resizing (PyTorch: `F.interpolate(mode="bicubic")`); the backward is the
//! backend's adjoint with the same geometry.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use tessera_tensor::{Backend, ResizeParams, Result, Tensor};

struct BicubicBackward {
    p: ResizeParams,
}

impl<B: Backend> Backward<B> for BicubicBackward {
    fn name(&self) -> &'static str {
        "interpolate_bicubic"
    }
    fn backward(&self, g: &Tensor<B>, _needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        Ok(vec![Some(g.interpolate_bicubic_backward(&self.p)?)])
    }
}

impl<B: Backend> Var<B> {
    /// Bicubic interpolation of `[n, c, h, w]` to an output `size` or by a `scale_factor`
    /// (exactly one), with PyTorch's semantics.
    pub fn interpolate_bicubic(
        &self,
        size: Option<[usize; 2]>,
        scale_factor: Option<[f64; 2]>,
        align_corners: bool,
    ) -> Result<Var<B>> {
        let x = self.value();
        let y = x.interpolate_bicubic(size, scale_factor, align_corners)?;
        let p = x.resize_params(size, scale_factor, align_corners)?;
        Ok(Var::from_op(
            y,
            core::slice::from_ref(self),
            Box::new(BicubicBackward { p }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};

    // Needs the tensor crate's bicubic kernels (being written in parallel).
    #[test]
    fn bicubic_up_and_down() {
        let x = rand(&[1, 2, 4, 5], 1);
        check(
            |v| v[0].interpolate_bicubic(Some([6, 7]), None, false),
            core::slice::from_ref(&x),
        );
        check(
            |v| v[0].interpolate_bicubic(Some([3, 3]), None, true),
            core::slice::from_ref(&x),
        );
        check(
            |v| v[0].interpolate_bicubic(None, Some([1.7, 1.3]), false),
            &[x],
        );
    }
}
