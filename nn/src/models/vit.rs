//! Vision Transformer (facebookresearch/dino `vision_transformer.py`), with DINO's parameter
//! names so that a DINO backbone state dict (converted to safetensors) loads as is:
//!
//! ```text
//! cls_token [1, 1, D], pos_embed [1, 1 + N, D], patch_embed.proj.{weight,bias}
//! blocks.{i}.norm1.*, blocks.{i}.attn.qkv.*, blocks.{i}.attn.proj.*,
//! blocks.{i}.norm2.*, blocks.{i}.mlp.fc1.*, blocks.{i}.mlp.fc2.*, norm.{weight,bias}
//! ```
//!
//! - Pre-norm blocks: `x + drop_path(attn(norm1(x)))`, then `x + drop_path(mlp(norm2(x)))`;
//!   LayerNorm eps 1e-6, exact GELU, `qkv` with bias, no dropout (DINO's `drop_rate = 0`).
//!   Stochastic depth rates grow linearly from 0 to `drop_path_rate` over the blocks.
//! - Any input size: [`VisionTransformer::interpolate_pos_encoding`] is DINO's. When the
//!   patch count or the aspect differs from the stored `√N × √N` grid, the patch part of
//!   `pos_embed` is resized bicubically (align_corners=False) with
//!   `scale_factor = ((gh + 0.1)/√N, (gw + 0.1)/√N)` (not `size=`: the +0.1 keeps the floor
//!   of the output size right), and the CLS entry is kept. Images must be multiples of the
//!   patch size (see [`PatchEmbed::grid`]).
//! - Initialization (DINO's `_init_weights`): `pos_embed`, `cls_token` and every Linear
//!   weight truncated normal (std 0.02, bounds ±2), Linear biases 0, LayerNorm (1, 0); the
//!   patch-embedding conv keeps PyTorch's default. Values come from Tessera's [`Rng`], not
//!   PyTorch's generator.
//! - Stochastic depth draws from one generator per block, seeded from the construction
//!   generator (see [`DropPath`]); `set_training(false)` turns it off.
//! - Loading weights: [`VisionTransformer::zeroed`] builds the model without drawing random
//!   values, then [`load_state_dict`](crate::ModuleExt::load_state_dict) (strict: names and shapes are checked, and a
//!   mismatch names the key and both shapes) or [`VisionTransformer::load_checkpoint`] for a
//!   DINO checkpoint converted with `scripts/gen_vit_fixtures.py --convert`.

use crate::init;
use crate::layers::{Attention, Conv2d, DropPath, LayerNorm, Linear, Mlp, PatchEmbed};
#[cfg(feature = "std")]
use crate::module::ModuleExt;
use crate::module::{join, Entry, EntryMut, Module, Param};
use crate::Result;
use alloc::format;
use alloc::vec::Vec;
use tessera_autograd::Var;
use tessera_tensor::{arg_err, shape_err, Backend, ConvOptions, DType, GeluApproximate, Rng};

/// The architecture (DINO's `VisionTransformer` arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VitConfig {
    /// Training image side: `pos_embed` holds `(img_size / patch_size)²` patch entries.
    pub img_size: usize,
    pub patch_size: usize,
    /// Image channels (3 for RGB, 1 for grayscale).
    pub in_chans: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    /// MLP hidden size / `embed_dim`.
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    /// Stochastic depth of the last block.
    pub drop_path_rate: f64,
    /// LayerNorm eps (1e-6 in DINO).
    pub norm_eps: f64,
}

impl VitConfig {
    fn preset(embed_dim: usize, num_heads: usize, patch_size: usize) -> Self {
        VitConfig {
            img_size: 224,
            patch_size,
            in_chans: 3,
            embed_dim,
            depth: 12,
            num_heads,
            mlp_ratio: 4.0,
            qkv_bias: true,
            drop_path_rate: 0.0,
            norm_eps: 1e-6,
        }
    }
    /// DINO `vit_tiny`: 192 dims, 12 blocks, 3 heads.
    pub fn tiny(patch_size: usize) -> Self {
        Self::preset(192, 3, patch_size)
    }
    /// DINO `vit_small` (ViT-S): 384 dims, 12 blocks, 6 heads.
    pub fn small(patch_size: usize) -> Self {
        Self::preset(384, 6, patch_size)
    }
    /// DINO `vit_base` (ViT-B): 768 dims, 12 blocks, 12 heads.
    pub fn base(patch_size: usize) -> Self {
        Self::preset(768, 12, patch_size)
    }
    /// Checks what the layers need: non-zero sizes, `patch_size <= img_size`, `embed_dim` a
    /// multiple of `num_heads`, `drop_path_rate` in `[0, 1)`.
    pub fn validate(&self) -> Result<()> {
        let c = self;
        let bad = c.patch_size == 0
            || c.img_size < c.patch_size
            || c.depth == 0
            || c.in_chans == 0
            || c.num_heads == 0
            || c.embed_dim % c.num_heads != 0
            || !(0.0..1.0).contains(&c.drop_path_rate);
        if bad {
            return Err(arg_err!(
                "VisionTransformer",
                "needs 0 < patch_size <= img_size, depth > 0, in_chans > 0, embed_dim a \
                 multiple of num_heads and drop_path_rate in [0, 1): {c:?}"
            )
            .into());
        }
        Ok(())
    }
    /// Patches per side of the training grid.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size.max(1)
    }
    /// `int(embed_dim * mlp_ratio)`, as DINO.
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
}

/// One pre-norm transformer block (DINO `Block`).
#[derive(Clone, Debug)]
pub struct Block<B: Backend> {
    pub norm1: LayerNorm<B>,
    pub attn: Attention<B>,
    pub drop_path: DropPath,
    pub norm2: LayerNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    fn new(c: &VitConfig, drop_path: f64, dtype: DType, rng: &mut Rng, b: &B) -> Result<Self> {
        let d = c.embed_dim;
        Ok(Block {
            norm1: LayerNorm::new(d, c.norm_eps, dtype, b)?,
            attn: Attention::new(d, c.num_heads, c.qkv_bias, dtype, rng, b)?,
            drop_path: DropPath::new(drop_path, rng.next_u64())?,
            norm2: LayerNorm::new(d, c.norm_eps, dtype, b)?,
            mlp: Mlp::new(d, c.mlp_hidden(), d, dtype, rng, b)?,
        })
    }

    /// `[b, n, D] -> [b, n, D]`.
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let y = self.attn.forward(&self.norm1.forward(x)?)?;
        let x = x.add(&self.drop_path.forward(&y)?)?;
        let y = self.mlp.forward(&self.norm2.forward(&x)?)?;
        x.add(&self.drop_path.forward(&y)?)
    }

    /// [`Block::forward`] in eval mode: drop-path is the identity.
    pub fn forward_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let x = x.add(&self.attn.forward(&self.norm1.forward(x)?)?)?;
        x.add(&self.mlp.forward(&self.norm2.forward(&x)?)?)
    }

    /// The attention weights `[b, heads, n, n]` of this block (DINO:
    /// `blk(x, return_attention=True)`).
    pub fn attention(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        Ok(self.attn.forward_with_attn(&self.norm1.forward(x)?)?.1)
    }
}

impl<B: Backend> Module<B> for Block<B> {
    fn visit(&self, p: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        self.norm1.visit(&join(p, "norm1"), f);
        self.attn.visit(&join(p, "attn"), f);
        self.norm2.visit(&join(p, "norm2"), f);
        self.mlp.visit(&join(p, "mlp"), f);
    }
    fn visit_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        self.norm1.visit_mut(&join(p, "norm1"), f);
        self.attn.visit_mut(&join(p, "attn"), f);
        self.norm2.visit_mut(&join(p, "norm2"), f);
        self.mlp.visit_mut(&join(p, "mlp"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.drop_path.training = training;
    }
}

/// `torch.linspace(0, end, steps)` in f32, read back as f64 (DINO's `dpr`).
fn linspace_f32(end: f64, steps: usize) -> Vec<f64> {
    if steps == 1 {
        return alloc::vec![0.0];
    }
    let (end, step) = (end as f32, end as f32 / (steps - 1) as f32);
    (0..steps)
        .map(|i| {
            let v = if i < steps / 2 {
                step * i as f32
            } else {
                end - step * (steps - 1 - i) as f32
            };
            f64::from(v)
        })
        .collect()
}

/// DINO's Vision Transformer backbone (no classification head).
#[derive(Clone, Debug)]
pub struct VisionTransformer<B: Backend> {
    pub config: VitConfig,
    pub cls_token: Param<B>,
    pub pos_embed: Param<B>,
    pub patch_embed: PatchEmbed<B>,
    pub blocks: Vec<Block<B>>,
    pub norm: LayerNorm<B>,
}

impl<B: Backend> VisionTransformer<B> {
    /// A model with DINO's initialization (see the module docs) drawn from `rng`.
    pub fn new(config: VitConfig, dtype: DType, rng: &mut Rng, backend: &B) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let d = c.embed_dim;
        let n = c.grid() * c.grid();
        let patch_embed = PatchEmbed::new(c.patch_size, c.in_chans, d, dtype, rng, backend)?;
        let pos_embed = Param::new(init::dino_trunc_normal(
            &[1, n + 1, d],
            dtype,
            rng,
            backend,
        )?);
        let cls_token = Param::new(init::dino_trunc_normal(&[1, 1, d], dtype, rng, backend)?);
        let mut blocks = Vec::with_capacity(c.depth);
        for p in linspace_f32(c.drop_path_rate, c.depth) {
            blocks.push(Block::new(c, p, dtype, rng, backend)?);
        }
        let mut vit = VisionTransformer {
            config,
            cls_token,
            pos_embed,
            patch_embed,
            blocks,
            norm: LayerNorm::new(d, c.norm_eps, dtype, backend)?,
        };
        vit.init_linears(rng)?;
        Ok(vit)
    }

    /// A model whose parameters are all zero (LayerNorms 1 and 0), to be filled by
    /// [`load_state_dict`](crate::ModuleExt::load_state_dict) or [`VisionTransformer::load_checkpoint`]: skips the
    /// random initialization, which dominates construction time (seconds for ViT-S in a
    /// debug build). Block `i` draws its stochastic depth from `Rng::new(i)`.
    pub fn zeroed(config: VitConfig, dtype: DType, backend: &B) -> Result<Self> {
        config.validate()?;
        let c = &config;
        let (d, p, hidden) = (c.embed_dim, c.patch_size, c.mlp_hidden());
        let zeros =
            |s: &[usize]| -> Result<Param<B>> { Ok(Param::new(init::zeros(s, dtype, backend)?)) };
        let linear = |i: usize, o: usize, bias: bool| -> Result<Linear<B>> {
            let bias = if bias { Some(zeros(&[o])?) } else { None };
            Ok(Linear {
                weight: zeros(&[o, i])?,
                bias,
            })
        };
        let norm = || LayerNorm::new(d, c.norm_eps, dtype, backend);
        let mut blocks = Vec::with_capacity(c.depth);
        for (i, rate) in linspace_f32(c.drop_path_rate, c.depth)
            .into_iter()
            .enumerate()
        {
            let attn = Attention {
                qkv: linear(d, 3 * d, c.qkv_bias)?,
                proj: linear(d, d, true)?,
                num_heads: c.num_heads,
                scale: 1.0 / libm::sqrt((d / c.num_heads) as f64),
            };
            blocks.push(Block {
                norm1: norm()?,
                attn,
                drop_path: DropPath::new(rate, i as u64)?,
                norm2: norm()?,
                mlp: Mlp {
                    fc1: linear(d, hidden, true)?,
                    fc2: linear(hidden, d, true)?,
                    gelu: GeluApproximate::None,
                },
            });
        }
        let proj = Conv2d::from_tensors(
            init::zeros(&[d, c.in_chans, p, p], dtype, backend)?,
            Some(init::zeros(&[d], dtype, backend)?),
            ConvOptions::new(p, 0),
        )?;
        Ok(VisionTransformer {
            config,
            cls_token: zeros(&[1, 1, d])?,
            pos_embed: zeros(&[1, c.grid() * c.grid() + 1, d])?,
            patch_embed: PatchEmbed {
                proj,
                patch_size: p,
            },
            blocks,
            norm: norm()?,
        })
    }

    /// DINO's `_init_weights` on the Linear layers (every `blocks.*` weight of rank 2;
    /// LayerNorms already are (1, 0)).
    fn init_linears(&mut self, rng: &mut Rng) -> Result<()> {
        let mut err = None;
        self.visit_mut("", &mut |name, e| {
            let EntryMut::Param(p) = e else { return };
            let linear = name.starts_with("blocks.") && !name.contains(".norm");
            if !linear || err.is_some() {
                return;
            }
            let (shape, dtype) = (p.value().shape().to_vec(), p.value().dtype());
            let backend = p.value().backend().clone();
            let fresh = if shape.len() == 2 {
                init::dino_trunc_normal(&shape, dtype, rng, &backend)
            } else {
                init::zeros(&shape, dtype, &backend)
            };
            err = fresh.and_then(|t| Ok(p.set(t)?)).err();
        });
        err.map_or(Ok(()), Err)
    }

    /// Selects the GELU of every block's MLP (PyTorch: building the model with
    /// `act_layer=partial(nn.GELU, approximate='tanh')`). DINO uses the exact form, the
    /// default; the choice is not a parameter, so checkpoints load into either.
    pub fn set_gelu(&mut self, approximate: GeluApproximate) {
        for block in &mut self.blocks {
            block.mlp.gelu = approximate;
        }
    }

    /// The builder form of [`VisionTransformer::set_gelu`].
    pub fn with_gelu(mut self, approximate: GeluApproximate) -> Self {
        self.set_gelu(approximate);
        self
    }

    /// The embedding dim `D`.
    pub fn embed_dim(&self) -> usize {
        self.config.embed_dim
    }

    /// DINO's `interpolate_pos_encoding` for an image of `h × w` pixels giving `npatch`
    /// patches: `pos_embed` itself when `npatch == N` and `h == w`, otherwise the CLS entry
    /// followed by the bicubically resized patch grid, `[1, 1 + npatch, D]`.
    pub fn interpolate_pos_encoding(
        &self,
        npatch: usize,
        h: usize,
        w: usize,
    ) -> tessera_tensor::Result<Var<B>> {
        let pos = self.pos_embed.var();
        let (n, d) = (pos.shape()[1] - 1, pos.shape()[2]);
        if npatch == n && h == w {
            return Ok(pos.clone());
        }
        let m = (0..=n).find(|m| m * m >= n).unwrap_or(0);
        if m * m != n {
            return Err(shape_err!(
                "interpolate_pos_encoding",
                "pos_embed has {n} patch entries, not a square grid"
            ));
        }
        // DINO names the image dims (w, h) = (x.shape[2], x.shape[3]): rows first.
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        let scale = [(gh as f64 + 0.1) / m as f64, (gw as f64 + 0.1) / m as f64];
        let grid = pos
            .narrow(1, 1, n)?
            .reshape(&[1, m, m, d])?
            .permute(&[0, 3, 1, 2])?
            .interpolate_bicubic(None, Some(scale), false)?;
        if grid.shape()[2..] != [gh, gw] || gh * gw != npatch {
            return Err(shape_err!(
                "interpolate_pos_encoding",
                "resizing the {m}x{m} grid by {scale:?} gave {:?}, expected {gh}x{gw} \
                 ({npatch} patches)",
                &grid.shape()[2..]
            ));
        }
        let grid = grid.permute(&[0, 2, 3, 1])?.reshape(&[1, npatch, d])?;
        Var::cat(&[pos.narrow(1, 0, 1)?, grid], 1)
    }

    /// Patch tokens with the CLS token prepended and positions added: `[b, 1 + n, D]`
    /// (DINO's `prepare_tokens`).
    pub fn prepare_tokens(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let [gh, gw] = self.patch_embed.grid(x.shape())?;
        let s = x.shape();
        let (b, h, w, d) = (s[0], s[2], s[3], self.embed_dim());
        let tokens = self.patch_embed.forward(x)?;
        let cls = self.cls_token.var().broadcast_to(&[b, 1, d])?;
        let tokens = Var::cat(&[cls, tokens], 1)?;
        tokens.add(&self.interpolate_pos_encoding(gh * gw, h, w)?)
    }

    /// Every token after the final norm, `[b, 1 + n, D]`: the CLS token, then the patch
    /// tokens (DINO's `forward` before it keeps `x[:, 0]`). Take the mean of `[.., 1.., ..]`
    /// for mean-pooled patch features.
    pub fn forward_tokens(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut t = self.prepare_tokens(x)?;
        for blk in &self.blocks {
            t = blk.forward(&t)?;
        }
        self.norm.forward(&t)
    }

    /// The image's feature vector `[b, D]`: the CLS token after the final norm. The same
    /// meaning as [`ResNet::forward_features`](crate::models::resnet::ResNet::forward_features)
    /// (pooled `[b, D]`) and the `Backbone` trait of `tessera-ssl`; every token is
    /// [`VisionTransformer::forward_tokens`].
    pub fn forward_features(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.forward_tokens(x)?.select(1, 0)
    }

    /// The CLS output after the final norm, `[b, D]` (DINO's `forward`; this ViT has no
    /// classifier, so it equals [`VisionTransformer::forward_features`]).
    pub fn forward(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        self.forward_features(x)
    }

    /// [`VisionTransformer::forward`] in eval mode, whatever mode the model is in: drop-path
    /// off. (The ViT has no BatchNorm and `forward` already takes `&self`; this is the call
    /// that is deterministic even on a model left in training mode.)
    pub fn forward_eval(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let mut t = self.prepare_tokens(x)?;
        for blk in &self.blocks {
            t = blk.forward_eval(&t)?;
        }
        self.norm.forward(&t)?.select(1, 0)
    }

    /// The last block's attention weights `[b, heads, 1 + n, 1 + n]`.
    pub fn get_last_selfattention(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        let (last, rest) = self
            .blocks
            .split_last()
            .ok_or_else(|| arg_err!("get_last_selfattention", "the model has no blocks"))?;
        let mut t = self.prepare_tokens(x)?;
        for blk in rest {
            t = blk.forward(&t)?;
        }
        last.attention(&t)
    }

    /// The outputs of the last `n` blocks, each through the final norm, `[b, 1 + N, D]`
    /// each, oldest first (DINO's `get_intermediate_layers`).
    pub fn get_intermediate_layers(
        &self,
        x: &Var<B>,
        n: usize,
    ) -> tessera_tensor::Result<Vec<Var<B>>> {
        let mut t = self.prepare_tokens(x)?;
        let depth = self.blocks.len();
        let mut out = Vec::new();
        for (i, blk) in self.blocks.iter().enumerate() {
            t = blk.forward(&t)?;
            if depth - i <= n {
                out.push(self.norm.forward(&t)?);
            }
        }
        Ok(out)
    }

    /// Loads a DINO backbone checkpoint converted to safetensors (see
    /// `scripts/gen_vit_fixtures.py --convert`). Prefixes `module.` (DDP) and `backbone.`
    /// (DINO's student/teacher wrapper) are stripped; then the load is strict, as
    /// [`load_state_dict`](crate::ModuleExt::load_state_dict).
    #[cfg(feature = "std")]
    pub fn load_checkpoint(&mut self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let backend = self.cls_token.value().backend().clone();
        let ck = crate::Checkpoint::load(path, &backend)?;
        let sd = ck
            .tensors
            .into_iter()
            .map(|(k, t)| {
                let k = k.strip_prefix("module.").unwrap_or(&k);
                (k.strip_prefix("backbone.").unwrap_or(k).into(), t)
            })
            .collect();
        self.load_state_dict(&sd)
    }
}

impl<B: Backend> Module<B> for VisionTransformer<B> {
    fn visit(&self, p: &str, f: &mut dyn FnMut(&str, Entry<'_, B>)) {
        f(&join(p, "cls_token"), Entry::Param(&self.cls_token));
        f(&join(p, "pos_embed"), Entry::Param(&self.pos_embed));
        self.patch_embed.visit(&join(p, "patch_embed"), f);
        for (i, blk) in self.blocks.iter().enumerate() {
            blk.visit(&join(p, &format!("blocks.{i}")), f);
        }
        self.norm.visit(&join(p, "norm"), f);
    }
    fn visit_mut(&mut self, p: &str, f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {
        f(&join(p, "cls_token"), EntryMut::Param(&mut self.cls_token));
        f(&join(p, "pos_embed"), EntryMut::Param(&mut self.pos_embed));
        self.patch_embed.visit_mut(&join(p, "patch_embed"), f);
        for (i, blk) in self.blocks.iter_mut().enumerate() {
            blk.visit_mut(&join(p, &format!("blocks.{i}")), f);
        }
        self.norm.visit_mut(&join(p, "norm"), f);
    }
    fn set_training(&mut self, training: bool) {
        for blk in &mut self.blocks {
            blk.set_training(training);
        }
    }
}
