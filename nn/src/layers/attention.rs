//! Multi-head self-attention (DINO / timm `Attention`): `qkv` (one Linear to `3·dim`, output
//! rows ordered q | k | v, then by head), scaled dot product with `scale = head_dim^-0.5`,
//! softmax over keys, heads concatenated and projected by `proj`.

use super::Linear;
use crate::module::{join, Entry, EntryMut, Module};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, shape_err, Backend, DType, Rng};

/// Multi-head self-attention over tokens `[b, n, dim]`.
#[derive(Clone, Debug)]
pub struct Attention<B: Backend> {
    pub qkv: Linear<B>,
    pub proj: Linear<B>,
    pub num_heads: usize,
    /// Multiplies `q kᵀ`: `head_dim^-0.5` (DINO's `qk_scale=None`).
    pub scale: f64,
}

impl<B: Backend> Attention<B> {
    /// `dim` must be a multiple of `num_heads`; PyTorch's default Linear init.
    pub fn new(
        dim: usize,
        num_heads: usize,
        qkv_bias: bool,
        dtype: DType,
        rng: &mut Rng,
        backend: &B,
    ) -> Result<Self> {
        if num_heads == 0 || dim % num_heads != 0 {
            return Err(arg_err!(
                "Attention::new",
                "dim {dim} is not a multiple of num_heads {num_heads}"
            )
            .into());
        }
        let head_dim = dim / num_heads;
        Ok(Attention {
            qkv: Linear::new(dim, 3 * dim, qkv_bias, dtype, rng, backend)?,
            proj: Linear::new(dim, dim, true, dtype, rng, backend)?,
            num_heads,
            scale: 1.0 / libm::sqrt(head_dim as f64),
        })
    }

    /// The embedding dim.
    pub fn dim(&self) -> usize {
        self.proj.out_features()
    }

    /// `x [b, n, dim]` -> (`[b, n, dim]`, attention weights `[b, heads, n, n]`), as DINO's
    /// `Attention.forward`.
    pub fn forward_with_attn(&self, x: &Var<B>) -> tessera_tensor::Result<(Var<B>, Var<B>)> {
        let (c, h) = (self.dim(), self.num_heads);
        let s = x.shape();
        if s.len() != 3 || s[2] != c {
            return Err(shape_err!(
                "Attention",
                "expects tokens [batch, n, {c}], got {s:?}"
            ));
        }
        let (b, n) = (s[0], s[1]);
        let qkv = self
            .qkv
            .forward(x)?
            .reshape(&[b, n, 3, h, c / h])?
            .permute(&[2, 0, 3, 1, 4])?;
        let (q, k, v) = (qkv.select(0, 0)?, qkv.select(0, 1)?, qkv.select(0, 2)?);
        let attn = q
            .matmul(&k.transpose(-2, -1)?)?
            .mul_scalar(self.scale)?
            .softmax(-1)?;
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape(&[b, n, c])?;
        Ok((self.proj.forward(&y)?, attn))
    }

    /// `x [b, n, dim] -> [b, n, dim]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        Ok(self.forward_with_attn(x)?.0)
    }
}

impl<B: Backend> Module<B> for Attention<B> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.qkv.visit(&join(prefix, "qkv"), f);
        self.proj.visit(&join(prefix, "proj"), f);
    }

    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.qkv.visit_mut(&join(prefix, "qkv"), f);
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
    fn shapes_rows_sum_to_one_and_errors() {
        let mut rng = Rng::new(1);
        let a = Attention::new(12, 3, true, DType::F64, &mut rng, &Cpu).unwrap();
        assert_eq!(a.num_params(), 12 * 36 + 36 + 12 * 12 + 12);
        let x = Tensor::randn(&[2, 5, 12], 0.0, 1.0, DType::F64, &mut rng, &Cpu).unwrap();
        let (y, attn) = a.forward_with_attn(&Var::constant(x)).unwrap();
        assert_eq!(
            (y.shape(), attn.shape()),
            (&[2, 5, 12][..], &[2, 3, 5, 5][..])
        );
        let rows = attn
            .value()
            .sum(&[-1], false)
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        assert!(rows.iter().all(|r| (r - 1.0).abs() < 1e-12));
        let bad = Var::constant(Tensor::ones(&[2, 5, 8], DType::F64, &Cpu).unwrap());
        assert!(a.forward(&bad).is_err());
        assert!(Attention::new(10, 3, true, DType::F64, &mut rng, &Cpu).is_err());
    }
}
