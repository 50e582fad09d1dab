//! `Conv2d`: 2-D convolution (PyTorch: `nn.Conv2d`, parameters `weight [oc, ic/groups, kh, kw]`
//! and `bias [oc]`). Stride, padding, dilation and groups are a [`ConvOptions`].

use crate::init;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, Backend, ConvOptions, DType, Rng, Tensor};

/// A 2-D convolution over `[n, c, h, w]` inputs.
#[derive(Clone, Debug)]
pub struct Conv2d<B: Backend> {
    pub weight: Param<B>,
    pub bias: Option<Param<B>>,
    pub options: ConvOptions,
}

/// Checks the channel counts against `groups` and the options against zero sizes.
fn check_config(
    in_channels: usize,
    out_channels: usize,
    kernel_size: [usize; 2],
    o: &ConvOptions,
) -> Result<()> {
    let g = o.groups;
    let bad = g == 0
        || in_channels == 0
        || out_channels == 0
        || in_channels % g != 0
        || out_channels % g != 0
        || kernel_size.contains(&0)
        || o.stride.contains(&0)
        || o.dilation.contains(&0);
    if bad {
        return Err(arg_err!(
            "Conv2d",
            "needs non-zero channels, kernel, stride and dilation and groups dividing both \
             channel counts; got in {in_channels}, out {out_channels}, kernel {kernel_size:?}, \
             {o:?}"
        )
        .into());
    }
    Ok(())
}

impl<B: Backend> Conv2d<B> {
    /// PyTorch's default initialization: weight `kaiming_uniform_(a=√5)`, i.e.
    /// U(-1/√fan_in, 1/√fan_in) with `fan_in = in_channels / groups · kh · kw`, and the bias
    /// from the same range.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        options: ConvOptions,
        bias: bool,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        check_config(in_channels, out_channels, kernel_size, &options)?;
        let shape = [
            out_channels,
            in_channels / options.groups,
            kernel_size[0],
            kernel_size[1],
        ];
        let weight = init::default_weight(&shape, dtype, rng, backend)?;
        let bias = match bias {
            true => Some(init::default_bias(&shape, dtype, rng, backend)?),
            false => None,
        };
        Self::from_tensors(weight, bias, options)
    }

    /// A convolution with these values (e.g. from a custom initializer): `weight` is
    /// `[oc, ic/groups, kh, kw]`, `bias` `[oc]`.
    pub fn from_tensors(
        weight: Tensor<B>,
        bias: Option<Tensor<B>>,
        options: ConvOptions,
    ) -> Result<Self> {
        let &[oc, icg, kh, kw] = weight.shape() else {
            return Err(arg_err!(
                "Conv2d",
                "weight must be [oc, ic/groups, kh, kw], got {:?}",
                weight.shape()
            )
            .into());
        };
        check_config(icg * options.groups, oc, [kh, kw], &options)?;
        if let Some(b) = &bias {
            if b.shape() != [oc] || b.dtype() != weight.dtype() {
                return Err(arg_err!(
                    "Conv2d",
                    "bias is {:?} {}, expected [{oc}] {}",
                    b.shape(),
                    b.dtype(),
                    weight.dtype()
                )
                .into());
            }
        }
        Ok(Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            options,
        })
    }

    /// Input channels (`ic`).
    pub fn in_channels(&self) -> usize {
        self.weight.value().shape()[1] * self.options.groups
    }

    /// Output channels (`oc`).
    pub fn out_channels(&self) -> usize {
        self.weight.value().shape()[0]
    }

    /// `[kh, kw]`.
    pub fn kernel_size(&self) -> [usize; 2] {
        let s = self.weight.value().shape();
        [s[2], s[3]]
    }

    /// `x [n, ic, h, w] -> [n, oc, oh, ow]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.forward_with(x, self.weight.var(), self.bias.as_ref().map(Param::var))
    }

    /// The functional form: this layer's options with explicit parameters (for gradient
    /// checks and functional calls).
    pub fn forward_with(
        &self,
        x: &Var<B>,
        weight: &Var<B>,
        bias: Option<&Var<B>>,
    ) -> tessera_tensor::Result<Var<B>> {
        x.conv2d(weight, bias, &self.options)
    }
}

impl<B: Backend> Module<B> for Conv2d<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(prefix, "weight"), Entry::Param(&self.weight));
        if let Some(b) = &self.bias {
            f(&join(prefix, "bias"), Entry::Param(b));
        }
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(&join(prefix, "weight"), EntryMut::Param(&mut self.weight));
        if let Some(b) = &mut self.bias {
            f(&join(prefix, "bias"), EntryMut::Param(b));
        }
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::Cpu;

    #[test]
    fn shapes_init_bounds_and_errors() {
        let mut rng = Rng::new(0);
        let o = ConvOptions {
            groups: 2,
            ..ConvOptions::new(2, 1)
        };
        let c = Conv2d::new(4, 6, [3, 3], o, true, DType::F64, &mut rng, &Cpu).unwrap();
        assert_eq!(c.weight.value().shape(), [6, 2, 3, 3]);
        assert_eq!((c.in_channels(), c.out_channels()), (4, 6));
        let bound = 1.0 / (18f64).sqrt();
        let w = c.weight.value().to_vec::<f64>().unwrap();
        assert!(w.iter().all(|v| v.abs() <= bound));
        let names: alloc::vec::Vec<_> = c.named_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["weight", "bias"]);
        let x = Var::constant(Tensor::ones(&[1, 4, 5, 5], DType::F64, &Cpu).unwrap());
        assert_eq!(c.forward(&x).unwrap().value().shape(), [1, 6, 3, 3]);
        // Bad configurations and inputs are errors, not panics.
        assert!(Conv2d::<Cpu>::new(3, 6, [3, 3], o, true, DType::F64, &mut rng, &Cpu).is_err());
        assert!(Conv2d::<Cpu>::new(4, 6, [0, 3], o, true, DType::F64, &mut rng, &Cpu).is_err());
        let bad = Var::constant(Tensor::ones(&[1, 3, 5, 5], DType::F64, &Cpu).unwrap());
        assert!(c.forward(&bad).is_err());
    }
}
