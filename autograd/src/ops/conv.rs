//! 2-D convolution. The backward uses the backend's two adjoint products
//! (`conv2d_backward_input`, `conv2d_backward_weight`); the bias gradient is the output
//! gradient summed over batch and space.

use crate::{Backward, Var};
use alloc::boxed::Box;
use alloc::vec::Vec;
use tessera_tensor::{Backend, Conv2dParams, ConvOptions, Result, Tensor};

struct Conv2dBackward<B: Backend> {
    x: Tensor<B>,
    w: Tensor<B>,
    p: Conv2dParams,
    has_bias: bool,
}

impl<B: Backend> Backward<B> for Conv2dBackward<B> {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn backward(&self, g: &Tensor<B>, needs: &[bool]) -> Result<Vec<Option<Tensor<B>>>> {
        let needs = |i: usize| needs.get(i).copied().unwrap_or(false);
        let mut out = Vec::with_capacity(3);
        out.push(match needs(0) {
            true => Some(g.conv2d_backward_input(&self.w, &self.p)?),
            false => None,
        });
        out.push(match needs(1) {
            true => Some(g.conv2d_backward_weight(&self.x, &self.p)?),
            false => None,
        });
        if self.has_bias {
            out.push(match needs(2) {
                true => Some(g.sum(&[0, 2, 3], false)?),
                false => None,
            });
        }
        Ok(out)
    }
}

impl<B: Backend> Var<B> {
    /// `conv2d(x, weight, bias)`: `x: [n, c, h, w]`, `weight: [oc, c/groups, kh, kw]`,
    /// `bias: [oc]` (PyTorch: `F.conv2d`).
    pub fn conv2d(
        &self,
        weight: &Var<B>,
        bias: Option<&Var<B>>,
        opts: &ConvOptions,
    ) -> Result<Var<B>> {
        let (x, w) = (self.value(), weight.value());
        let y = x.conv2d(w, bias.map(Var::value), opts)?;
        let bw = Conv2dBackward {
            x: x.clone(),
            w: w.clone(),
            p: x.conv2d_params(w.shape(), opts)?,
            has_bias: bias.is_some(),
        };
        let mut inputs = alloc::vec![self.clone(), weight.clone()];
        inputs.extend(bias.cloned());
        Ok(Var::from_op(y, &inputs, Box::new(bw)))
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{check, rand};
    use crate::Var;
    use tessera_tensor::ConvOptions;

    #[test]
    fn conv2d_input_weight_bias() {
        let (x, w, b) = (
            rand(&[2, 2, 5, 5], 1),
            rand(&[3, 2, 3, 3], 2),
            rand(&[3], 3),
        );
        let o = ConvOptions::new(2, 1);
        let f = |v: &[Var<_>]| v[0].conv2d(&v[1], Some(&v[2]), &o);
        check(f, &[x.clone(), w, b]);
        // Grouped, dilated, no bias.
        let o = ConvOptions {
            dilation: [2, 1],
            groups: 2,
            ..ConvOptions::new(1, 1)
        };
        check(
            |v| v[0].conv2d(&v[1], None, &o),
            &[x, rand(&[4, 1, 2, 2], 4)],
        );
    }
}
