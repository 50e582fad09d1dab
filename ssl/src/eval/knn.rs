//! DINO's weighted k-nearest-neighbour classifier (`eval_knn.py`: `knn_classifier`).
//!
//! Per test sample: cosine similarity to every training feature (both L2-normalized, as
//! `nn.functional.normalize(x, dim=1, p=2)`), the `k` most similar training samples, each
//! voting for its label with weight `exp(sim / T)` (T = 0.07); the classes sorted by summed
//! vote give the prediction (top-1) and the top-5 accuracy.
//!
//! The `n_test x n_train` similarity matrix is never built whole (10,000 x 100,000 would be
//! 4 GB in f32 and twice that on the host): test rows are processed in blocks of at most
//! `chunk_size` rows and at most [`SIMILARITY_BLOCK_BYTES`] of similarities, each block's size
//! checked against the memory budget ([`tessera_tensor::memory`]) first. Every test row is
//! computed by the same code whatever the blocking, so results do not depend on it (on the CPU
//! backend bitwise: each similarity is the same dot product in the same order).
//!
//! Features with a NaN or an infinity are refused (an error naming the set and the first bad
//! `(row, col)`), since they would make the neighbours, and so the accuracy, meaningless.
//!
//! Ties, which PyTorch's `topk`/`sort` leave unspecified, are broken towards the lower
//! index: among equally similar neighbours the lower training index comes first, among
//! classes with equal votes the lower class id (`sort(stable=True)`).

use super::finite::check_finite;
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::{memory, Backend, Tensor};

/// The most bytes one block of similarities may take: the `[rows, n_train]` block on the
/// backend plus its f64 copy on the host. A block is always at least one test row (whose size
/// is then checked against the memory budget alone).
pub const SIMILARITY_BLOCK_BYTES: usize = 64 << 20;

/// Bytes one test row of similarities takes: `n_train` values in the features' dtype on the
/// backend and as f64 on the host (`None` on overflow).
fn row_bytes(n_train: usize, elem_bytes: usize) -> Option<usize> {
    n_train.checked_mul(elem_bytes + 8)
}

/// Test rows per similarity block: at most `chunk_size`, at most `block_bytes` of
/// similarities, at least one.
fn rows_per_block(chunk_size: usize, row_bytes: usize, block_bytes: usize) -> usize {
    chunk_size.min(block_bytes / row_bytes.max(1)).max(1)
}

/// Settings of [`knn_classifier`].
#[derive(Clone, Debug, PartialEq)]
pub struct KnnConfig {
    /// The numbers of neighbours to evaluate (DINO's `--nb_knn`: 10, 20, 100, 200). All are
    /// answered from one top-`max(ks)` search.
    pub ks: Vec<usize>,
    /// Vote temperature `T` in `exp(sim / T)` (DINO: 0.07).
    pub temperature: f64,
    /// Test rows per similarity block, at most (the block is also bounded to
    /// 64 MiB); the results do not depend on it.
    pub chunk_size: usize,
}

impl Default for KnnConfig {
    fn default() -> Self {
        KnnConfig {
            ks: alloc::vec![10, 20, 100, 200],
            temperature: 0.07,
            chunk_size: 256,
        }
    }
}

impl KnnConfig {
    /// One `k`, T = 0.07.
    pub fn with_k(k: usize) -> Self {
        KnnConfig {
            ks: alloc::vec![k],
            ..Self::default()
        }
    }
}

/// The outcome for one `k`, with what DINO's `knn_classifier` computes on the way (its
/// `indices`, `distances`, `probs` and sorted `predictions`), flattened row-major over the
/// test samples. The details take `n_test · (16·k + 8·num_classes + 4·top5_width)` bytes
/// on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct KnnResult {
    pub k: usize,
    /// Fraction of test samples whose top class is right (DINO prints it in percent).
    pub top1: f64,
    /// Fraction whose label is among the `min(5, k)` best classes; `None` with fewer than
    /// five classes.
    pub top5: Option<f64>,
    /// The predicted class of every test sample.
    pub predictions: Vec<u32>,
    /// `[n_test, k]`: the training indices of each test sample's neighbours, most similar
    /// first (ties: lower index first).
    pub neighbor_indices: Vec<usize>,
    /// `[n_test, k]`: their cosine similarities, in the same order.
    pub neighbor_similarities: Vec<f64>,
    /// `[n_test, num_classes]`: each class's summed vote `Σ exp(sim / T)` over the
    /// neighbours with that label (DINO's `probs`, unnormalized as there).
    pub class_scores: Vec<f64>,
    /// `[n_test, top5_width]`: the best `top5_width = min(5, k, num_classes)` classes by
    /// score, best first (ties: lower class first); column 0 is `predictions`.
    pub top5_predictions: Vec<u32>,
    /// Columns of `top5_predictions`.
    pub top5_width: usize,
    /// Columns of `class_scores`.
    pub num_classes: usize,
}

impl KnnResult {
    /// Test sample `i`'s neighbours: training indices and similarities, most similar first.
    pub fn neighbors(&self, i: usize) -> (&[usize], &[f64]) {
        let r = i * self.k..(i + 1) * self.k;
        (
            &self.neighbor_indices[r.clone()],
            &self.neighbor_similarities[r],
        )
    }

    /// Test sample `i`'s score of every class.
    pub fn scores(&self, i: usize) -> &[f64] {
        &self.class_scores[i * self.num_classes..(i + 1) * self.num_classes]
    }

    /// Test sample `i`'s best classes, best first.
    pub fn top5_of(&self, i: usize) -> &[u32] {
        &self.top5_predictions[i * self.top5_width..(i + 1) * self.top5_width]
    }
}

/// The features as k-NN compares them: each row divided by its L2 norm, clamped below at
/// 1e-12 (DINO: `nn.functional.normalize(x, dim=1, p=2)`), through the crate's one
/// [`crate::l2_normalize`] (no graph is recorded for a constant).
fn normalize_rows<B: Backend>(x: &Tensor<B>) -> Result<Tensor<B>> {
    let v = crate::l2_normalize(&tessera_autograd::Var::constant(x.clone()), 1e-12)?;
    Ok(v.value().clone())
}

/// Checks a `[n, d]` feature matrix with `n` labels below `num_classes`.
fn check_split(what: &str, f: &[usize], labels: &[u32], num_classes: usize) -> Result<()> {
    if f.len() != 2 {
        return Err(config_err!("{what} features must be [n, d], got {f:?}"));
    }
    if f[0] != labels.len() {
        return Err(config_err!(
            "{what}: {} feature rows but {} labels",
            f[0],
            labels.len()
        ));
    }
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        return Err(config_err!(
            "{what} label {l} of sample {i} is out of range for {num_classes} classes"
        ));
    }
    Ok(())
}

/// Weighted k-NN classification of `test_features` by `train_features` (both `[n, d]`, any
/// float dtype, on any backend; the similarity is one `matmul` per block of test rows on that
/// backend), one [`KnnResult`] per `cfg.ks` entry, in that order. Non-finite features and a
/// similarity row over the memory budget are errors.
///
/// ```
/// use tessera_ssl::eval::{knn_classifier, KnnConfig};
/// use tessera_tensor::{Cpu, Tensor};
/// # fn main() -> tessera_ssl::Result<()> {
/// // Two clusters: class 0 near the x axis, class 1 near the y axis.
/// let train = Tensor::from_vec(vec![1.0f32, 0.1, 0.9, 0.0, 0.1, 1.0, 0.0, 0.8], &[4, 2], &Cpu)?;
/// let test = Tensor::from_vec(vec![2.0f32, 0.3, 0.2, 3.0], &[2, 2], &Cpu)?;
/// let r = knn_classifier(&train, &[0, 0, 1, 1], &test, &[0, 1], 2, &KnnConfig::with_k(2))?;
/// assert_eq!(r[0].predictions, vec![0, 1]);
/// assert_eq!(r[0].top1, 1.0);
/// # Ok(()) }
/// ```
pub fn knn_classifier<B: Backend>(
    train_features: &Tensor<B>,
    train_labels: &[u32],
    test_features: &Tensor<B>,
    test_labels: &[u32],
    num_classes: usize,
    cfg: &KnnConfig,
) -> Result<Vec<KnnResult>> {
    knn_blocked(
        train_features,
        train_labels,
        test_features,
        test_labels,
        num_classes,
        cfg,
        SIMILARITY_BLOCK_BYTES,
    )
}

/// [`knn_classifier`] with blocks of at most `block_bytes` of similarities.
fn knn_blocked<B: Backend>(
    train_features: &Tensor<B>,
    train_labels: &[u32],
    test_features: &Tensor<B>,
    test_labels: &[u32],
    num_classes: usize,
    cfg: &KnnConfig,
    block_bytes: usize,
) -> Result<Vec<KnnResult>> {
    check_split("train", train_features.shape(), train_labels, num_classes)?;
    check_split("test", test_features.shape(), test_labels, num_classes)?;
    let (n_train, d) = (train_features.shape()[0], train_features.shape()[1]);
    let n_test = test_features.shape()[0];
    if test_features.shape()[1] != d {
        return Err(config_err!(
            "train features have {d} dims, test features {}",
            test_features.shape()[1]
        ));
    }
    if n_test == 0 {
        return Err(config_err!("k-NN needs at least one test sample"));
    }
    let k_max = cfg.ks.iter().copied().max().unwrap_or(0);
    if cfg.ks.contains(&0) || k_max == 0 || k_max > n_train {
        return Err(config_err!(
            "k-NN: every k must be in 1..={n_train} (the training set size), got {:?}",
            cfg.ks
        ));
    }
    let t = cfg.temperature;
    if !(t.is_finite() && t > 0.0) || cfg.chunk_size == 0 {
        return Err(config_err!(
            "k-NN: temperature must be > 0 and chunk_size >= 1, got {t} and {}",
            cfg.chunk_size
        ));
    }
    check_finite("knn_classifier", "train (bank) features", train_features)?;
    check_finite("knn_classifier", "test features", test_features)?;
    // One test row of similarities must fit the budget; a block is then as many rows as
    // `chunk_size` and `block_bytes` allow.
    let elem = train_features.dtype().size_in_bytes();
    let one_row = row_bytes(n_train, elem);
    memory::check_bytes("k-NN similarity row", one_row)?;
    let rows = rows_per_block(cfg.chunk_size, one_row.unwrap_or(usize::MAX), block_bytes);
    memory::check_bytes(
        "k-NN similarity block",
        one_row.and_then(|b| b.checked_mul(rows)),
    )?;

    let train_t = normalize_rows(train_features)?.t()?;
    let test_n = normalize_rows(test_features)?;

    let mut results: Vec<KnnResult> = cfg
        .ks
        .iter()
        .map(|&k| {
            let top5_width = k.min(5).min(num_classes);
            KnnResult {
                k,
                top1: 0.0,
                top5: None,
                predictions: Vec::with_capacity(n_test),
                neighbor_indices: Vec::with_capacity(n_test * k),
                neighbor_similarities: Vec::with_capacity(n_test * k),
                class_scores: Vec::with_capacity(n_test * num_classes),
                top5_predictions: Vec::with_capacity(n_test * top5_width),
                top5_width,
                num_classes,
            }
        })
        .collect();
    let mut hits1 = alloc::vec![0usize; cfg.ks.len()];
    let mut hits5 = alloc::vec![0usize; cfg.ks.len()];
    let mut order: Vec<usize> = Vec::with_capacity(n_train);
    let mut votes = alloc::vec![0.0f64; num_classes];
    let mut classes: Vec<usize> = Vec::with_capacity(num_classes);
    for start in (0..n_test).step_by(rows) {
        let m = rows.min(n_test - start);
        let sim = test_n.narrow(0, start, m)?.matmul(&train_t)?.to_f64_vec()?;
        for (r, row) in sim.chunks_exact(n_train).enumerate() {
            // Descending similarity, ascending index on ties: a strict total order, so the
            // unstable selection and sort are deterministic.
            let by_sim = |a: &usize, b: &usize| row[*b].total_cmp(&row[*a]).then(a.cmp(b));
            order.clear();
            order.extend(0..n_train);
            if k_max < n_train {
                order.select_nth_unstable_by(k_max - 1, by_sim);
            }
            order.truncate(k_max);
            order.sort_unstable_by(by_sim);
            let target = test_labels[start + r] as usize;
            for (j, res) in results.iter_mut().enumerate() {
                let k = res.k;
                votes.iter_mut().for_each(|v| *v = 0.0);
                for &i in &order[..k] {
                    votes[train_labels[i] as usize] += libm::exp(row[i] / t);
                }
                classes.clear();
                classes.extend(0..num_classes);
                // Stable: equal votes keep the lower class first.
                classes.sort_by(|a, b| votes[*b].total_cmp(&votes[*a]));
                let best = &classes[..res.top5_width];
                res.predictions.push(classes[0] as u32);
                res.neighbor_indices.extend_from_slice(&order[..k]);
                res.neighbor_similarities
                    .extend(order[..k].iter().map(|&i| row[i]));
                res.class_scores.extend_from_slice(&votes);
                res.top5_predictions.extend(best.iter().map(|&c| c as u32));
                hits1[j] += usize::from(classes[0] == target);
                hits5[j] += usize::from(best.contains(&target));
            }
        }
    }
    let n = n_test as f64;
    for (j, res) in results.iter_mut().enumerate() {
        res.top1 = hits1[j] as f64 / n;
        res.top5 = (num_classes >= 5).then(|| hits5[j] as f64 / n);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::{Cpu, DType, Rng};

    fn random(n: usize, d: usize, seed: u64) -> Tensor<Cpu> {
        Tensor::randn(&[n, d], 0.0, 1.0, DType::F32, &mut Rng::new(seed), &Cpu).unwrap()
    }

    #[test]
    fn blocks_are_bounded_and_never_empty() {
        // 10,000 test x 2,000 bank rows (f32): 256 rows of 2,000 similarities per block.
        let row = row_bytes(2_000, 4).unwrap();
        let rows = rows_per_block(256, row, SIMILARITY_BLOCK_BYTES);
        assert_eq!(rows, 256);
        assert!(rows * row <= SIMILARITY_BLOCK_BYTES);
        // A bank so large that few rows fit: the block shrinks below `chunk_size`.
        let row = row_bytes(1_000_000, 4).unwrap();
        let rows = rows_per_block(256, row, SIMILARITY_BLOCK_BYTES);
        assert!(rows < 256 && rows * row <= SIMILARITY_BLOCK_BYTES, "{rows}");
        // A single row over the block size is still one row (then checked against the budget).
        assert_eq!(
            rows_per_block(256, SIMILARITY_BLOCK_BYTES + 1, SIMILARITY_BLOCK_BYTES),
            1
        );
        assert_eq!(row_bytes(usize::MAX, 4), None);
    }

    /// The blocked computation gives exactly what one unblocked `[n_test, n_train]`
    /// similarity matrix gives, for blocks of one row, of a few rows and of `chunk_size` rows.
    #[test]
    fn blocking_does_not_change_the_results() {
        let (train, test) = (random(500, 16, 1), random(300, 16, 2));
        let train_labels: Vec<u32> = (0..500).map(|i| (i * 7 % 10) as u32).collect();
        let test_labels: Vec<u32> = (0..300).map(|i| (i * 3 % 10) as u32).collect();
        let run = |chunk_size: usize, block_bytes: usize| {
            let cfg = KnnConfig {
                ks: alloc::vec![1, 5, 20],
                temperature: 0.07,
                chunk_size,
            };
            knn_blocked(
                &train,
                &train_labels,
                &test,
                &test_labels,
                10,
                &cfg,
                block_bytes,
            )
            .unwrap()
        };
        let whole = run(300, usize::MAX);
        let row = row_bytes(500, 4).unwrap();
        for (chunk, block) in [
            (1, usize::MAX),
            (256, 7 * row),
            (256, row),
            (64, usize::MAX),
        ] {
            assert_eq!(run(chunk, block), whole, "chunk {chunk}, block {block}");
        }
        assert!(whole[0].top1 >= 0.0 && whole[2].predictions.len() == 300);
    }

    /// Used to be accepted silently (every similarity NaN, an arbitrary prediction).
    #[test]
    fn non_finite_features_are_refused_with_the_first_bad_index() {
        let train = random(6, 3, 3);
        let labels = [0, 1, 0, 1, 0, 1];
        let mut v = random(4, 3, 4).to_vec::<f32>().unwrap();
        v[2 * 3 + 1] = f32::NAN;
        let test = Tensor::from_vec(v, &[4, 3], &Cpu).unwrap();
        let cfg = KnnConfig::with_k(3);
        let e = knn_classifier(&train, &labels, &test, &[0, 1, 0, 1], 2, &cfg).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("test features") && msg.contains("(row 2, col 1)") && msg.contains("NaN"),
            "{msg}"
        );
        let mut v = train.to_vec::<f32>().unwrap();
        v[5 * 3] = f32::NEG_INFINITY;
        let bad_train = Tensor::from_vec(v, &[6, 3], &Cpu).unwrap();
        let e = knn_classifier(&bad_train, &labels, &random(2, 3, 5), &[0, 1], 2, &cfg);
        let msg = e.unwrap_err().to_string();
        assert!(
            msg.contains("train (bank) features") && msg.contains("(row 5, col 0)"),
            "{msg}"
        );
    }
}
