//! Helpers shared by the integration tests (`mod common;` in each test file).

use tessera_nn::models::vit::{VisionTransformer, VitConfig};
use tessera_tensor::{Cpu, DType, Rng};

/// A tiny grayscale ViT (patch 7, 2 heads) for `img_size`-pixel inputs, `embed_dim` wide and
/// `depth` blocks deep, initialized from `seed`.
pub fn tiny_vit(
    img_size: usize,
    embed_dim: usize,
    depth: usize,
    seed: u64,
) -> VisionTransformer<Cpu> {
    let cfg = VitConfig {
        img_size,
        in_chans: 1,
        embed_dim,
        depth,
        num_heads: 2,
        ..VitConfig::tiny(7)
    };
    VisionTransformer::new(cfg, DType::F32, &mut Rng::new(seed), &Cpu).unwrap()
}
