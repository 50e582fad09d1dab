//! Whole layers and objectives built from the ops, as the models use them. Small versions get
//! the full Jacobian; larger ones fast mode (three random projections each). Inputs are fixed
//! by seed (no kinks or ties by construction or by a margin of many orders of magnitude) and
//! rotate through the layouts, so these tests are deterministic.

use crate::support::*;
use tessera::autograd::{cross_entropy, cross_entropy_probs};
use tessera::tensor::{Pool2dOptions, Result};

/// Inputs of the given shapes, values uniform in `[-scale, scale)`, layouts rotating with
/// `seed` (each input a different one).
fn inputs(shapes: &[&[usize]], scale: f64, seed: u64) -> Vec<Input> {
    shapes
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let layout = ALL_LAYOUTS[(seed as usize + k) % ALL_LAYOUTS.len()];
            let layout = if s.len() <= 1 && layout == Layout::Expanded {
                Layout::Strided
            } else {
                layout
            };
            Input::build(
                s,
                layout,
                &Domain::Range(-scale, scale),
                seed * 31 + k as u64,
            )
        })
        .collect()
}

/// `x @ wᵀ + b` with `x: [.., in]`, `w: [out, in]`, `b: [out]` (PyTorch: `nn.Linear`).
fn linear(x: &V, w: &V, b: &V) -> Result<V> {
    x.matmul(&w.t()?)?.add(b)
}

/// Multi-head self-attention on `x: [b, n, d]` (timm's `Attention`): one qkv projection, heads
/// split by reshape and permute, softmax(q kᵀ / sqrt(hd)) v, heads merged, output projection.
fn attention(x: &V, qkv_w: &V, qkv_b: &V, proj_w: &V, proj_b: &V, heads: usize) -> Result<V> {
    let (b, n, d) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let hd = d / heads;
    let qkv = linear(x, qkv_w, qkv_b)?
        .reshape(&[b, n, 3, heads, hd])?
        .permute(&[2, 0, 3, 1, 4])?; // [3, b, heads, n, hd]
    let (q, k, v) = (qkv.select(0, 0)?, qkv.select(0, 1)?, qkv.select(0, 2)?);
    let attn = q
        .matmul(&k.transpose(-2, -1)?)?
        .mul_scalar(1.0 / (hd as f64).sqrt())?
        .softmax(-1)?;
    let out = attn.matmul(&v)?.transpose(1, 2)?.reshape(&[b, n, d])?;
    linear(&out, proj_w, proj_b)
}

#[test]
fn linear_layer() {
    for seed in 0..4 {
        let xs = inputs(&[&[2, 3, 4], &[5, 4], &[5]], 1.0, seed);
        check("linear", |v| linear(&v[0], &v[1], &v[2]), &xs);
    }
    let xs = inputs(&[&[4, 6, 16], &[24, 16], &[24]], 1.0, 9);
    check_fast("linear (large)", |v| linear(&v[0], &v[1], &v[2]), &xs);
}

#[test]
fn attention_block() {
    // Tiny, full Jacobian: b 1, n 3, d 4, 2 heads.
    for seed in 0..2 {
        let xs = inputs(&[&[1, 3, 4], &[12, 4], &[12], &[4, 4], &[4]], 1.0, seed);
        check(
            "attention (tiny)",
            |v| attention(&v[0], &v[1], &v[2], &v[3], &v[4], 2),
            &xs,
        );
    }
    // b 2, n 5, d 8, 2 heads, fast mode.
    let xs = inputs(&[&[2, 5, 8], &[24, 8], &[24], &[8, 8], &[8]], 0.8, 5);
    check_fast(
        "attention",
        |v| attention(&v[0], &v[1], &v[2], &v[3], &v[4], 2),
        &xs,
    );
}

/// A ViT block in miniature: `x + attn(ln1(x))`, then `x + fc2(gelu(fc1(ln2(x))))`.
#[test]
fn vit_block() {
    let (b, n, d, hidden) = (2, 4, 8, 16);
    let shapes: [&[usize]; 13] = [
        &[b, n, d],   // 0 x
        &[d],         // 1 ln1 weight
        &[d],         // 2 ln1 bias
        &[3 * d, d],  // 3 qkv w
        &[3 * d],     // 4 qkv b
        &[d, d],      // 5 proj w
        &[d],         // 6 proj b
        &[d],         // 7 ln2 weight
        &[d],         // 8 ln2 bias
        &[hidden, d], // 9 fc1 w
        &[hidden],    // 10 fc1 b
        &[d, hidden], // 11 fc2 w
        &[d],         // 12 fc2 b
    ];
    let block = |v: &[V]| {
        let h = v[0].layer_norm(&[d], Some(&v[1]), Some(&v[2]), 1e-6)?;
        let x = v[0].add(&attention(&h, &v[3], &v[4], &v[5], &v[6], 2)?)?;
        let h = x.layer_norm(&[d], Some(&v[7]), Some(&v[8]), 1e-6)?;
        let h = linear(&linear(&h, &v[9], &v[10])?.gelu()?, &v[11], &v[12])?;
        x.add(&h)
    };
    for seed in 0..2 {
        check_fast("vit block", block, &inputs(&shapes, 0.8, seed));
    }
}

/// conv -> batch norm (train) -> relu -> max pool, as in a ResNet stem.
#[test]
fn conv_bn_relu_pool() {
    let stem = |v: &[V]| {
        let y = v[0].conv2d(&v[1], Some(&v[2]), &tessera::tensor::ConvOptions::new(1, 1))?;
        let (y, _) = y.batch_norm_train(Some(&v[3]), Some(&v[4]), 1e-5)?;
        y.relu()?.max_pool2d(&Pool2dOptions::new(3, 2, 1))
    };
    for seed in 0..2 {
        let xs = inputs(&[&[2, 3, 5, 5], &[4, 3, 3, 3], &[4], &[4], &[4]], 1.0, seed);
        check_fast("conv-bn-relu-maxpool", stem, &xs);
    }
    // Small enough for the full Jacobian.
    let xs = inputs(&[&[2, 1, 4, 4], &[2, 1, 3, 3], &[2], &[2], &[2]], 1.0, 3);
    check("conv-bn-relu-maxpool (small)", stem, &xs);
}

/// A classifier head on pooled features, then cross-entropy against class indices; and
/// DINO's loss between a student and a fixed (sharpened) teacher distribution.
#[test]
fn cross_entropy_on_logits() {
    let targets = indices(vec![2, 0, 4, 1], &[4]);
    let head = |v: &[V]| {
        let feats = v[0].mean(&[1], false)?; // [4, 6]
        cross_entropy(&linear(&feats, &v[1], &v[2])?, &targets)
    };
    for seed in 0..3 {
        let xs = inputs(&[&[4, 3, 6], &[5, 6], &[5]], 1.0, seed);
        check("linear -> cross_entropy", head, &xs);
    }
    let teacher = random(&[4, 7], &Domain::Any, 11)
        .div_scalar(0.04)
        .unwrap()
        .softmax(-1)
        .unwrap();
    let teacher = V::constant(teacher);
    let dino = |v: &[V]| cross_entropy_probs(&v[0].div_scalar(0.1)?, &teacher);
    check("dino student loss", dino, &inputs(&[&[4, 7]], 1.0, 1));
}

/// BYOL's regression loss `2 - 2 cos(p, z)` with l2 normalization written out.
#[test]
fn byol_cosine_loss() {
    let l2 =
        |x: &V| -> Result<V> { x.div(&x.square()?.sum(&[-1], true)?.add_scalar(1e-12)?.sqrt()?) };
    let loss = |v: &[V]| {
        let cos = l2(&v[0])?.mul(&l2(&v[1])?)?.sum(&[-1], false)?;
        cos.mul_scalar(-2.0)?.add_scalar(2.0)?.mean(&[], false)
    };
    for seed in 0..3 {
        check("byol loss", loss, &inputs(&[&[3, 5], &[3, 5]], 1.0, seed));
    }
}
