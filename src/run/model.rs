//! The ViT backbone of a `dino_vit_s` checkpoint, rebuilt from the architecture string in its
//! metadata (used by `knn_eval`, `attention_maps` and `features`), or a random one.

use super::{ckpt, ctx, Result, RunError};
use std::path::Path;
use tessera_autograd::Var;
use tessera_nn::checkpoint::{select_prefix, Checkpoint};
use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_nn::ModuleExt;
use tessera_ssl::augment::{resize_crop, stack_images, CropBox, Image, Normalize};
use tessera_ssl::data::Dataset;
use tessera_tensor::{Backend, DType, Rng, Tensor};

/// The number after `key ` in an architecture string such as
/// `vit(embed 384, depth 12, heads 6, patch 7, img 28, chans 1) + dino head(...)`.
pub fn arch_field(arch: &str, key: &str) -> Result<usize> {
    let pat = format!("{key} ");
    arch.find(&pat)
        .and_then(|i| {
            let rest = &arch[i + pat.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
        .ok_or_else(|| {
            RunError::new(format!(
                "the checkpoint's architecture {arch:?} lacks {key}"
            ))
        })
}

/// The backbone configuration described by a `dino_vit_s` architecture string (DINO's
/// ViT-S defaults for what the string does not give: MLP ratio, qkv bias, norm eps).
pub fn vit_config(arch: &str) -> Result<VitConfig> {
    if !arch.starts_with("vit(") {
        return Err(RunError::new(format!(
            "the checkpoint is of another architecture ({arch}); this program needs a ViT \
             checkpoint written by dino_vit_s"
        )));
    }
    Ok(VitConfig {
        img_size: arch_field(arch, "img")?,
        in_chans: arch_field(arch, "chans")?,
        embed_dim: arch_field(arch, "embed")?,
        depth: arch_field(arch, "depth")?,
        num_heads: arch_field(arch, "heads")?,
        ..VitConfig::small(arch_field(arch, "patch")?)
    })
}

/// `teacher` or `student` (the value of a `--network` flag).
pub fn check_network(network: &str) -> Result<()> {
    if network == "teacher" || network == "student" {
        Ok(())
    } else {
        Err(RunError::usage(format!(
            "--network {network:?}: expected teacher or student"
        )))
    }
}

/// A ViT backbone (its tensors on `B`) and where it came from.
pub struct Backbone<B: Backend> {
    pub model: VisionTransformer<B>,
    /// The checkpoint's architecture string, or a description of the random model.
    pub arch: String,
    /// Whether the weights came from a checkpoint (else: random initialization).
    pub trained: bool,
    /// The input standardization the model was trained with (`None`: `[0, 1]` pixels).
    pub normalize: Option<Normalize>,
}

impl<B: Backend> Backbone<B> {
    /// Standardizes a `[b, c, h, w]` batch of `[0, 1]` pixels as in training (on the batch's
    /// backend).
    pub fn prepare(&self, x: Tensor<B>) -> Result<Tensor<B>> {
        let Some(n) = &self.normalize else {
            return Ok(x);
        };
        let c = x.shape().get(1).copied().unwrap_or(0);
        if x.rank() != 4 || c != n.mean.len() {
            return Err(RunError::new(format!(
                "the input {:?} does not have the {} channels the model was trained on",
                x.shape(),
                n.mean.len()
            )));
        }
        let per_channel = |v: &[f32]| Tensor::from_slice(v, &[1, c, 1, 1], x.backend());
        let (mean, std) = (per_channel(&n.mean), per_channel(&n.std));
        mean.and_then(|m| x.to_dtype(DType::F32)?.sub(&m)?.div(&std?))
            .map_err(ctx("normalizing the input"))
    }
}

/// Loads the `network` (`teacher` or `student`) backbone of a checkpoint written by
/// `dino_vit_s`; every failure (missing file, other architecture, missing or misshapen
/// tensors) is one line naming the file. The weights are created on `backend`.
pub fn load_backbone<B: Backend>(path: &Path, network: &str, backend: &B) -> Result<Backbone<B>> {
    check_network(network)?;
    if !path.is_file() {
        return Err(RunError::new(format!(
            "no checkpoint at {}",
            path.display()
        )));
    }
    let ck = Checkpoint::load(path, backend).map_err(ctx(&format!(
        "cannot read the checkpoint {}",
        path.display()
    )))?;
    let arch = ck.metadata.get(ckpt::ARCH_KEY).cloned().ok_or_else(|| {
        RunError::new(format!(
            "the checkpoint {} has no architecture metadata (not written by dino_vit_s)",
            path.display()
        ))
    })?;
    let vit = vit_config(&arch)
        .map_err(|e| RunError::new(format!("{}: {}", path.display(), e.message)))?;
    vit.validate().map_err(ctx(&format!(
        "the checkpoint {} describes an invalid ViT",
        path.display()
    )))?;
    let mut model =
        VisionTransformer::zeroed(vit, DType::F32, backend).map_err(ctx("the model"))?;
    let sd = select_prefix(&ck.tensors, &format!("{network}.backbone."));
    model
        .load_state_dict(&sd)
        .map_err(ctx(&format!("loading the {network} backbone")))?;
    let normalize = ckpt::normalization(&ck.metadata)
        .map_err(|e| RunError::new(format!("{}: {}", path.display(), e.message)))?;
    Ok(Backbone {
        model,
        arch,
        trained: true,
        normalize,
    })
}

/// A randomly initialized backbone (DINO's initialization, seeded) on `backend`.
pub fn random_backbone<B: Backend>(vit: VitConfig, seed: u64, backend: &B) -> Result<Backbone<B>> {
    // The model's size is the input's: a tiny or empty image is the input's fault, so say so
    // before the ViT's own check lists its whole configuration.
    let (s, p) = (vit.img_size, vit.patch_size);
    if p > 0 && (s < p || s % p != 0) {
        return Err(RunError::new(format!(
            "the images are {s}x{s} px: a random ViT with patches of {p} px (--patch-size) \
             needs a positive multiple of {p}"
        )));
    }
    vit.validate().map_err(ctx("the model"))?;
    let model = VisionTransformer::new(vit, DType::F32, &mut Rng::new(seed), backend)
        .map_err(ctx("the model"))?;
    Ok(Backbone {
        model,
        arch: format!(
            "vit(embed {}, depth {}, heads {}, patch {}, img {}, chans {}), random init (seed {seed})",
            vit.embed_dim, vit.depth, vit.num_heads, vit.patch_size, vit.img_size, vit.in_chans
        ),
        trained: false,
        normalize: None,
    })
}

/// `img` resized to `size x size` (bilinear over the whole image); unchanged at that size.
pub fn resized(img: Image, size: usize) -> Image {
    if img.height() == size && img.width() == size {
        return img;
    }
    let whole = CropBox {
        top: 0,
        left: 0,
        height: img.height(),
        width: img.width(),
    };
    resize_crop(&img, whole, size, size)
}

/// The backbone's CLS features `[n, D]` of every image of `ds` (resized to `size`,
/// standardized with `norm`), in batches of up to 64 without building a graph: what DINO's k-NN
/// evaluation extracts. The batch shrinks to what the memory budget allows (attention grows
/// with the square of the token count, so a large `size` would otherwise ask for tens of GB).
/// The images are decoded and standardized on the host; each batch is then moved to
/// `backend`, where `model` lives.
pub fn cls_features<B: Backend>(
    model: &VisionTransformer<B>,
    ds: &Dataset,
    size: usize,
    norm: Option<&Normalize>,
    backend: &B,
) -> Result<Tensor<B>> {
    let both = token_features(model, ds, size, norm, backend)?;
    let d = model.config.embed_dim;
    both.narrow(1, 0, d).map_err(ctx("features"))
}

/// What a ViT's output tokens are summarised by for k-NN: the CLS token (DINO's choice), or
/// the mean of the patch tokens (global average pooling, as in MAE's and iBOT's linear
/// probes), both after the final norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Cls,
    PatchMean,
}

impl Feature {
    /// The feature `dino_vit_s`'s headline number is about, and `knn_eval`'s default: the
    /// mean of the patch tokens. At 28 px with 16 patches the DINO loss, applied to the CLS
    /// token, improves the patch tokens' mean more than the CLS token itself within a CPU
    /// budget (README.md, "Results"); DINO's own linear probe for ViT-B pools the patch
    /// tokens too (`--avgpool_patchtokens`).
    pub const DINO_HEADLINE: Feature = Feature::PatchMean;

    /// The name used in flags and printed tables: `cls` or `patch-mean`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Cls => "cls",
            Feature::PatchMean => "patch-mean",
        }
    }

    /// Parses [`Feature::name`].
    pub fn parse(s: &str) -> Option<Feature> {
        match s {
            "cls" => Some(Feature::Cls),
            "patch-mean" => Some(Feature::PatchMean),
            _ => None,
        }
    }

    /// This feature's columns `[n, D]` of [`token_features`]' `[n, 2D]`.
    pub fn columns<B: Backend>(self, both: &Tensor<B>) -> Result<Tensor<B>> {
        let d = both.shape().get(1).copied().unwrap_or(0) / 2;
        let start = match self {
            Feature::Cls => 0,
            Feature::PatchMean => d,
        };
        both.narrow(1, start, d).map_err(ctx("features"))
    }
}

/// Both features of every image of `ds` from one forward pass, side by side: `[n, 2D]`,
/// columns `0..D` the CLS token and `D..2D` the mean of the patch tokens (see
/// [`Feature`]). Same batching and preprocessing as [`cls_features`].
pub fn token_features<B: Backend>(
    model: &VisionTransformer<B>,
    ds: &Dataset,
    size: usize,
    norm: Option<&Normalize>,
    backend: &B,
) -> Result<Tensor<B>> {
    let batch = tessera_ssl::eval::vit_batch_within_budget(&model.config, size, size, 64)
        .map_err(ctx("features"))?;
    let mut rows: Vec<Tensor<B>> = Vec::new();
    for start in (0..ds.len()).step_by(batch) {
        let imgs: Vec<Image> = (start..(start + batch).min(ds.len()))
            .map(|i| {
                let mut im = resized(ds.image(i)?, size);
                if let Some(n) = norm {
                    n.apply(&mut im)?;
                }
                Ok(im)
            })
            .collect::<std::result::Result<_, tessera_ssl::Error>>()
            .map_err(ctx("features"))?;
        let refs: Vec<&Image> = imgs.iter().collect();
        let x = stack_images(&refs, backend).map_err(ctx("features"))?;
        let tokens = model
            .forward_tokens(&Var::constant(x))
            .map_err(ctx("features"))?;
        let t = tokens.value();
        let n = t.shape()[1];
        let cls = t.select(1, 0).map_err(ctx("features"))?;
        let patch_mean = t
            .narrow(1, 1, n - 1)
            .and_then(|p| p.mean(&[1], false))
            .map_err(ctx("features"))?;
        rows.push(Tensor::cat(&[cls, patch_mean], 1).map_err(ctx("features"))?);
    }
    Tensor::cat(&rows, 0).map_err(ctx("features"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dino_vit_s_architecture() {
        let a = "vit(embed 32, depth 2, heads 2, patch 7, img 28, chans 1) + \
                 dino head(out 64, hidden 64, bottleneck 16)";
        let c = vit_config(a).unwrap();
        assert_eq!(
            (
                c.embed_dim,
                c.depth,
                c.num_heads,
                c.patch_size,
                c.img_size,
                c.in_chans
            ),
            (32, 2, 2, 7, 28, 1)
        );
        let e = vit_config("resnet18(in 1, small_stem true, img 28)").unwrap_err();
        assert!(e.message.contains("another architecture"), "{e}");
        assert!(vit_config("vit(embed 32)").is_err());
    }
}
