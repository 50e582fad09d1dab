//! `PatchEmbed` (DINO / timm): a [`Conv2d`] with kernel = stride = `patch_size` named `proj`,
//! flattened to tokens: `[b, c, h, w] -> [b, (h/p)·(w/p), dim]`, patches in row-major order.

use super::Conv2d;
use crate::module::{join, Entry, EntryMut, Module};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, shape_err, Backend, ConvOptions, DType, Rng};

/// Image to patch tokens. The conv keeps PyTorch's default init (DINO does not re-init it).
#[derive(Clone, Debug)]
pub struct PatchEmbed<B: Backend> {
    pub proj: Conv2d<B>,
    pub patch_size: usize,
}

impl<B: Backend> PatchEmbed<B> {
    /// `in_chans` channels to `embed_dim` per `patch_size × patch_size` patch.
    pub fn new(
        patch_size: usize,
        in_chans: usize,
        embed_dim: usize,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        if patch_size == 0 {
            return Err(arg_err!("PatchEmbed::new", "patch_size must be > 0").into());
        }
        let opts = ConvOptions::new(patch_size, 0);
        let proj = Conv2d::new(
            in_chans,
            embed_dim,
            [patch_size, patch_size],
            opts,
            true,
            dtype,
            rng,
            backend,
        )?;
        Ok(PatchEmbed { proj, patch_size })
    }

    /// The patch grid `[h/p, w/p]` of an image `[b, c, h, w]`. Errors unless the image has
    /// this layer's channel count and both sides are non-zero multiples of the patch size
    /// (DINO's code silently crops the remainder; crop before calling, as DINO's
    /// `visualize_attention.py` does).
    pub fn grid(&self, shape: &[usize]) -> tessera_tensor::Result<[usize; 2]> {
        let (p, c) = (self.patch_size, self.proj.in_channels());
        if shape.len() != 4 || shape[1] != c {
            return Err(shape_err!(
                "PatchEmbed",
                "expects images [batch, {c}, height, width], got {shape:?}"
            ));
        }
        let (h, w) = (shape[2], shape[3]);
        if h == 0 || w == 0 || h % p != 0 || w % p != 0 {
            return Err(shape_err!(
                "PatchEmbed",
                "image size {h}x{w} (input {shape:?}) is not a non-zero multiple of the patch \
                 size {p}"
            ));
        }
        Ok([h / p, w / p])
    }

    /// `x [b, c, h, w] -> [b, (h/p)·(w/p), dim]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.grid(x.shape())?;
        self.proj.forward(x)?.flatten(2, 3)?.transpose(1, 2)
    }
}

impl<B: Backend> Module<B> for PatchEmbed<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.proj.visit(&join(prefix, "proj"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.proj.visit_mut(&join(prefix, "proj"), f);
    }

    fn set_training(&mut self, _training: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::ModuleExt;
    use tessera_tensor::{Cpu, Tensor};

    #[test]
    fn tokens_names_and_size_errors() {
        let pe = PatchEmbed::new(4, 1, 6, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
        let names: alloc::vec::Vec<_> = pe.named_params().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["proj.weight", "proj.bias"]);
        let x = Var::constant(Tensor::ones(&[2, 1, 8, 12], DType::F32, &Cpu).unwrap());
        assert_eq!(pe.forward(&x).unwrap().shape(), [2, 6, 6]);
        let bad = Var::constant(Tensor::ones(&[2, 1, 8, 10], DType::F32, &Cpu).unwrap());
        let msg = alloc::format!("{}", pe.forward(&bad).unwrap_err());
        assert!(
            msg.contains("8x10") && msg.contains("patch size 4"),
            "{msg}"
        );
        let rgb = Var::constant(Tensor::ones(&[2, 3, 8, 8], DType::F32, &Cpu).unwrap());
        assert!(pe.forward(&rgb).is_err());
    }
}
