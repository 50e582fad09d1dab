//! How many images a ViT forward may take at once within the memory budget
//! ([`tessera_tensor::memory`]). Attention is quadratic in the number of tokens: at 700 x 700
//! pixels and patch 7 one image has 10,001 tokens, and a batch of 64 with 6 heads would ask for
//! 150 GB of attention scores. Evaluation tools size their batches with this instead of letting
//! the first matmul fail (or, without a budget, the allocator abort).

use alloc::format;
use tessera_nn::models::vit::VitConfig;
use tessera_tensor::{memory, Result};

/// Copies of the `[heads, tokens, tokens]` scores a forward holds at once (scores, softmax
/// output and the kernels' temporaries), a conservative count.
const LIVE_SCORE_COPIES: usize = 4;

/// Bytes of attention working memory one `h x w` image takes in a forward of `cfg` (f32
/// scores, four copies of them at once), or `None` on overflow.
pub fn vit_image_bytes(cfg: &VitConfig, h: usize, w: usize) -> Option<usize> {
    let p = cfg.patch_size.max(1);
    let tokens = (h / p).checked_mul(w / p)?.checked_add(1)?;
    tokens
        .checked_mul(tokens)?
        .checked_mul(cfg.num_heads)?
        .checked_mul(4 * LIVE_SCORE_COPIES)
}

/// The largest batch of at most `max_batch` `h x w` images whose attention working memory
/// fits the budget (at least 1), or an error naming the image size, the tokens, the bytes one
/// image needs and the limit when even one image does not fit.
pub fn vit_batch_within_budget(
    cfg: &VitConfig,
    h: usize,
    w: usize,
    max_batch: usize,
) -> Result<usize> {
    let one = vit_image_bytes(cfg, h, w);
    let p = cfg.patch_size.max(1);
    memory::check_bytes(
        &format!(
            "a ViT forward of one {h}x{w} image ({} tokens, {} heads of attention)",
            (h / p) * (w / p) + 1,
            cfg.num_heads
        ),
        one,
    )?;
    let one = one.unwrap_or(usize::MAX).max(1);
    Ok((memory::allocation_bound() / one).clamp(1, max_batch.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attention_bytes_grow_with_the_square_of_the_tokens() {
        let cfg = VitConfig::small(7);
        // 28 px, patch 7: 17 tokens; 6 heads, 4 bytes, 4 copies.
        assert_eq!(vit_image_bytes(&cfg, 28, 28), Some(17 * 17 * 6 * 16));
        // 700 px: 10,001 tokens, 9.6 GB of scores per image.
        assert_eq!(
            vit_image_bytes(&cfg, 700, 700),
            Some(10_001 * 10_001 * 6 * 16)
        );
        assert_eq!(vit_image_bytes(&cfg, usize::MAX, usize::MAX), None);
        // Small images always get the whole batch (no budget smaller than a few MB here).
        assert_eq!(vit_batch_within_budget(&cfg, 28, 28, 64).unwrap(), 64);
        let e = vit_batch_within_budget(&cfg, usize::MAX / 2, 7, 64).unwrap_err();
        assert!(e.to_string().contains("ViT forward of one"), "{e}");
    }
}
