//! Linear evaluation on frozen features (DINO `eval_linear.py`): a single linear layer
//! (`LinearClassifier`: weight ~ N(0, 0.01²), zero bias) trained with SGD (momentum 0.9, no
//! weight decay by default) and a per-epoch cosine learning rate (`CosineAnnealingLR` with
//! `eta_min = 0`) on cross-entropy, then top-1/top-5 on the test features.
//!
//! DINO extracts features on the fly with augmentations; here the features are given, which is
//! the usual cheap variant (and what a user evaluating exported features wants).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use tessera_autograd::{cross_entropy, Var};
use tessera_nn::optim::{Optimizer, ParamGroup, Sgd, SgdConfig};
use tessera_nn::{Result, StateDict};
use tessera_tensor::{arg_err, Backend, DType, Rng, Tensor};

/// Settings of [`linear_probe`] (DINO's defaults, except the epoch count).
#[derive(Clone, Debug, PartialEq)]
pub struct LinearProbeConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// Learning rate for a batch of 256; scaled linearly with `batch_size` as DINO does.
    pub base_lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    /// Seeds the initialization and the shuffling.
    pub seed: u64,
}

impl Default for LinearProbeConfig {
    fn default() -> Self {
        LinearProbeConfig {
            epochs: 100,
            batch_size: 256,
            base_lr: 0.001,
            momentum: 0.9,
            weight_decay: 0.0,
            seed: 0,
        }
    }
}

/// What [`linear_probe`] measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearProbeResult {
    /// Fraction of test samples classified right.
    pub top1: f64,
    /// Fraction with the label among the 5 best classes (`None` with fewer than 5 classes).
    pub top5: Option<f64>,
    /// Mean training loss of every epoch.
    pub epoch_losses: Vec<f64>,
}

fn check(split: &str, f: &Tensor<impl Backend>, labels: &[u32], num_classes: usize) -> Result<()> {
    let op = "linear_probe";
    if f.rank() != 2 || f.shape()[0] != labels.len() || f.shape()[0] == 0 {
        return Err(arg_err!(
            op,
            "{split} features {:?} do not match {} labels (need [n, d], n > 0)",
            f.shape(),
            labels.len()
        )
        .into());
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= num_classes) {
        return Err(arg_err!(
            op,
            "{split} label {l} is out of range for {num_classes} classes"
        )
        .into());
    }
    Ok(())
}

/// Trains a linear classifier on `train` features (`[n, d]`, any float dtype; computed in
/// that dtype) and evaluates it on `test`.
pub fn linear_probe<B: Backend>(
    train: &Tensor<B>,
    train_labels: &[u32],
    test: &Tensor<B>,
    test_labels: &[u32],
    num_classes: usize,
    cfg: &LinearProbeConfig,
) -> Result<LinearProbeResult> {
    let op = "linear_probe";
    check("train", train, train_labels, num_classes)?;
    check("test", test, test_labels, num_classes)?;
    // A NaN feature would make the loss, the weights and every prediction NaN.
    super::check_finite(op, "train features", train)?;
    super::check_finite(op, "test features", test)?;
    if test.shape()[1] != train.shape()[1]
        || num_classes == 0
        || cfg.batch_size == 0
        || cfg.epochs == 0
    {
        return Err(arg_err!(
            op,
            "train {:?} / test {:?} features, {num_classes} classes, batch {}, epochs {}",
            train.shape(),
            test.shape(),
            cfg.batch_size,
            cfg.epochs
        )
        .into());
    }
    let (backend, dtype, (n, d)) = (
        train.backend(),
        train.dtype(),
        (train.shape()[0], train.shape()[1]),
    );
    let mut rng = Rng::new(cfg.seed);
    let mut params = StateDict::new();
    params.insert(
        String::from("weight"),
        Tensor::randn(&[num_classes, d], 0.0, 0.01, dtype, &mut rng, backend)?,
    );
    params.insert(
        String::from("bias"),
        Tensor::zeros(&[num_classes], dtype, backend)?,
    );
    let lr = cfg.base_lr * cfg.batch_size as f64 / 256.0;
    let group = ParamGroup::new(["weight", "bias"], lr).with_weight_decay(cfg.weight_decay);
    let mut sgd = Sgd::new(
        vec![group],
        SgdConfig {
            momentum: cfg.momentum,
            dampening: 0.0,
            nesterov: false,
        },
    )?;
    let labels_of = |idx: &[usize], labels: &[u32]| -> Result<Tensor<B>> {
        Ok(Tensor::from_vec(
            idx.iter().map(|&i| labels[i] as i64).collect::<Vec<_>>(),
            &[idx.len()],
            backend,
        )?)
    };
    let mut epoch_losses = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        // CosineAnnealingLR(T_max = epochs, eta_min = 0), stepped once per epoch.
        sgd.groups_mut()[0].lr =
            lr * (1.0 + libm::cos(core::f64::consts::PI * epoch as f64 / cfg.epochs as f64)) / 2.0;
        let order = rng.permutation(n);
        let (mut total, mut batches) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let rows = Tensor::from_vec(
                idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                &[idx.len()],
                backend,
            )?;
            let x = Var::constant(train.index_select(0, &rows)?);
            let (w, b) = (
                Var::leaf(params["weight"].clone()),
                Var::leaf(params["bias"].clone()),
            );
            let logits = x.matmul(&w.t()?)?.add(&b)?;
            let loss = cross_entropy(&logits, &labels_of(idx, train_labels)?)?;
            let grads = loss.backward()?;
            let mut by_name = StateDict::new();
            for (name, v) in [("weight", &w), ("bias", &b)] {
                if let Some(g) = grads.get(v) {
                    by_name.insert(String::from(name), g.clone());
                }
            }
            sgd.step_named(&mut params, &by_name)?;
            total += loss.value().item()?;
            batches += 1;
        }
        epoch_losses.push(total / batches as f64);
    }
    let logits = test
        .matmul(&params["weight"].t()?)?
        .add(&params["bias"])?
        .to_dtype(DType::F64)?;
    let scores = logits.to_vec::<f64>()?;
    let (mut top1, mut top5) = (0usize, 0usize);
    for (row, &label) in scores.chunks_exact(num_classes).zip(test_labels) {
        let mut order: Vec<usize> = (0..num_classes).collect();
        // Highest score first; ties keep the lower class index.
        order.sort_by(|&a, &b| {
            row[b]
                .partial_cmp(&row[a])
                .unwrap_or(core::cmp::Ordering::Equal)
        });
        top1 += (order[0] == label as usize) as usize;
        top5 += order.iter().take(5).any(|&c| c == label as usize) as usize;
    }
    let m = test_labels.len() as f64;
    Ok(LinearProbeResult {
        top1: top1 as f64 / m,
        top5: (num_classes >= 5).then(|| top5 as f64 / m),
        epoch_losses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::Cpu;

    /// Three well-separated clusters: the probe must learn them and its loss must fall.
    #[test]
    fn separable_clusters_are_learned() {
        let mut rng = Rng::new(7);
        let (n, d, k) = (90, 4, 3);
        let mut feats = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let c = i % k;
            for j in 0..d {
                let center = if j == c { 3.0 } else { 0.0 };
                feats.push(center + 0.3 * rng.normal());
            }
            labels.push(c as u32);
        }
        let x = Tensor::from_vec(feats, &[n, d], &Cpu).unwrap();
        let cfg = LinearProbeConfig {
            epochs: 30,
            batch_size: 16,
            base_lr: 1.0,
            ..Default::default()
        };
        let r = linear_probe(&x, &labels, &x, &labels, k, &cfg).unwrap();
        assert!(r.top1 > 0.95, "{r:?}");
        assert_eq!(r.top5, None);
        assert!(
            r.epoch_losses.last().unwrap() < &(0.5 * r.epoch_losses[0]),
            "{:?}",
            r.epoch_losses
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let x = Tensor::<Cpu>::zeros(&[4, 2], DType::F32, &Cpu).unwrap();
        let cfg = LinearProbeConfig::default();
        assert!(linear_probe(&x, &[0, 1, 2], &x, &[0, 1, 0, 1], 3, &cfg).is_err());
        assert!(linear_probe(&x, &[0, 1, 5, 1], &x, &[0, 1, 0, 1], 3, &cfg).is_err());
    }

    /// Used to train on NaN and report a meaningless accuracy.
    #[test]
    fn non_finite_features_are_refused() {
        let x = Tensor::<Cpu>::zeros(&[4, 2], DType::F32, &Cpu).unwrap();
        let bad = Tensor::from_vec(
            vec![0.0f32, 0.0, 0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0],
            &[4, 2],
            &Cpu,
        )
        .unwrap();
        let cfg = LinearProbeConfig::default();
        let labels = [0, 1, 0, 1];
        let msg = linear_probe(&x, &labels, &bad, &labels, 2, &cfg)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("test features") && msg.contains("(row 2, col 1)"),
            "{msg}"
        );
        let msg = linear_probe(&bad, &labels, &x, &labels, 2, &cfg)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train features"), "{msg}");
    }
}
