//! The attention maps of DINO's figures: the last block's self-attention from the CLS token to
//! every patch, per head (DINO `visualize_attention.py`: `attentions[0, :, 0, 1:]` reshaped to
//! the patch grid).

use tessera_nn::models::vit::VisionTransformer;
use tessera_tensor::{Backend, Result, Tensor};

/// `[b, heads, h/p, w/p]`: for each image and head of the last block, how much the CLS token
/// attends to each patch (each map sums to at most 1; the rest goes to the CLS token itself).
/// `images` is `[b, c, h, w]` with `h` and `w` multiples of the patch size.
pub fn cls_attention_maps<B: Backend>(
    vit: &VisionTransformer<B>,
    images: &Tensor<B>,
) -> Result<Tensor<B>> {
    let shape = images.shape().to_vec();
    let p = vit.config.patch_size;
    if shape.len() != 4 || p == 0 {
        return Err(tessera_tensor::Error::Shape {
            op: "cls_attention_maps",
            msg: alloc::format!("images must be [b, c, h, w], got {shape:?}"),
        });
    }
    // The ViT checks the image size against the patch size and reports it.
    let attn = vit.get_last_selfattention(&tessera_autograd::Var::constant(images.clone()))?;
    let a = attn.value(); // [b, heads, 1 + n, 1 + n]
    let (gh, gw) = (shape[2] / p, shape[3] / p);
    let (b, heads, t) = (a.shape()[0], a.shape()[1], a.shape()[2]);
    a.select(2, 0)?
        .narrow(2, 1, t - 1)?
        .reshape(&[b, heads, gh, gw])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_nn::models::vit::VitConfig;
    use tessera_tensor::{Cpu, DType, Rng};

    #[test]
    fn one_map_per_head_on_the_patch_grid() {
        let mut cfg = VitConfig::tiny(4);
        cfg.embed_dim = 12;
        cfg.depth = 1;
        cfg.num_heads = 3;
        cfg.img_size = 16;
        let vit = VisionTransformer::new(cfg, DType::F64, &mut Rng::new(0), &Cpu).unwrap();
        let img = Tensor::rand_uniform(
            &[2, 3, 16, 12],
            0.0,
            1.0,
            DType::F64,
            &mut Rng::new(1),
            &Cpu,
        )
        .unwrap();
        let maps = cls_attention_maps(&vit, &img).unwrap();
        assert_eq!(maps.shape(), &[2, 3, 4, 3]);
        // CLS attention over the patches is part of a softmax row: positive, summing below 1.
        let sums = maps.sum(&[2, 3], false).unwrap().to_vec::<f64>().unwrap();
        assert!(sums.iter().all(|&s| s > 0.0 && s < 1.0), "{sums:?}");
        let bad = Tensor::zeros(&[1, 3, 10, 12], DType::F64, &Cpu).unwrap();
        assert!(cls_attention_maps(&vit, &bad).is_err());
    }
}
