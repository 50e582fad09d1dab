//! Evaluation that a run can stop between chunks: features and the weighted k-NN computed a
//! chunk at a time, each chunk advancing a [`Phase`] that polls for SIGINT/SIGTERM, so a
//! signal during a long evaluation stops at the next chunk (used by [`super::session`]).

use super::precision::in_f32;
use super::progress::Phase;
use super::{ctx, Result};
use std::ops::Range;
use std::time::Instant;
use tessera_ssl::augment::Normalize;
use tessera_ssl::data::Dataset;
use tessera_ssl::eval::{knn_classifier, pixel_features, raw_pixel_knn, KnnConfig};
use tessera_tensor::{Backend, Tensor};

/// The test rows per k-NN chunk: DINO's chunk size, and the unit between signal polls.
const KNN_CHUNK: usize = 256;

/// Chunks of `0..n` of `size` items.
pub fn chunks(n: usize, size: usize) -> impl Iterator<Item = Range<usize>> {
    (0..n)
        .step_by(size.max(1))
        .map(move |s| s..(s + size.max(1)).min(n))
}

/// The number of `size`-item chunks of `n` items.
pub fn chunk_count(n: usize, size: usize) -> usize {
    n.div_ceil(size.max(1))
}

/// Features of `n` items computed chunk by chunk with `f` (one call per range of
/// `chunks(n, batch)`), advancing `phase` after each: `None` when a signal stopped it.
pub fn features_polled<B: Backend>(
    n: usize,
    batch: usize,
    phase: &mut Phase,
    mut f: impl FnMut(Range<usize>) -> Result<Tensor<B>>,
) -> Result<Option<Tensor<B>>> {
    // Evaluation is f32 whatever the training precision (see `precision::in_f32`).
    in_f32(|| {
        let mut rows = Vec::with_capacity(chunk_count(n, batch));
        for r in chunks(n, batch) {
            rows.push(f(r)?);
            if phase.advance() {
                return Ok(None);
            }
        }
        Tensor::cat(&rows, 0).map(Some).map_err(ctx("features"))
    })
}

/// The number of [`Phase`] units of [`knn_top1_polled`] for `n_test` test features.
pub fn knn_units(n_test: usize) -> usize {
    chunk_count(n_test, KNN_CHUNK)
}

/// Weighted k-NN top-1 (k = min(20, bank size), T = 0.07) of `test` against `train`
/// features, 256 test rows at a time, advancing `phase` after each chunk: `None`
/// when a signal stopped it. Each test row's vote depends only on that row, so the chunks
/// give the numbers of one call over all rows.
pub fn knn_top1_polled<B: Backend>(
    (train, train_labels): (&Tensor<B>, &[u32]),
    (test, test_labels): (&Tensor<B>, &[u32]),
    classes: usize,
    phase: &mut Phase,
) -> Result<Option<f64>> {
    in_f32(|| knn_top1_chunks((train, train_labels), (test, test_labels), classes, phase))
}

/// [`knn_top1_polled`] in the current precision.
fn knn_top1_chunks<B: Backend>(
    (train, train_labels): (&Tensor<B>, &[u32]),
    (test, test_labels): (&Tensor<B>, &[u32]),
    classes: usize,
    phase: &mut Phase,
) -> Result<Option<f64>> {
    let n_test = test_labels.len();
    let cfg = KnnConfig::with_k(20.min(train_labels.len()));
    let mut hits = 0usize;
    for r in chunks(n_test, KNN_CHUNK) {
        let rows = test.narrow(0, r.start, r.len()).map_err(ctx("k-NN"))?;
        let labels = &test_labels[r];
        let res = knn_classifier(train, train_labels, &rows, labels, classes, &cfg)
            .map_err(ctx("k-NN"))?;
        hits += res[0]
            .predictions
            .iter()
            .zip(labels)
            .filter(|(p, l)| p == l)
            .count();
        if phase.advance() {
            return Ok(None);
        }
    }
    Ok(Some(hits as f64 / n_test as f64))
}

/// The raw-pixel k-NN floor (k = 20, T = 0.07) with polling: prints and returns it, `None`
/// when a signal stopped it.
pub(super) fn raw_pixel_floor_polled<B: Backend>(
    bank: &Dataset,
    test: &Dataset,
    normalize: Option<&Normalize>,
    backend: &B,
) -> Result<Option<f64>> {
    let t = Instant::now();
    let c = bank.image_shape()[0];
    let feats = |ds: &Dataset| {
        pixel_features(&ds.images, ds.len(), c, normalize, backend).map_err(ctx("raw-pixel k-NN"))
    };
    let (tr, te) = in_f32(|| Ok::<_, super::RunError>((feats(bank)?, feats(test)?)))?;
    let classes = bank.num_classes.max(test.num_classes);
    let mut phase = Phase::new("k-NN raw pixels", knn_units(test.len()));
    let top1 = knn_top1_polled(
        (&tr, &bank.labels),
        (&te, &test.labels),
        classes,
        &mut phase,
    )?;
    phase.finish();
    if let Some(top1) = top1 {
        println!(
            "k-NN floor, raw pixels{} (k=20, T=0.07): top-1 {:.2}%  ({:.1}s)",
            if normalize.is_some() {
                ", standardised"
            } else {
                ""
            },
            100.0 * top1,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(top1)
}

/// Prints and returns the k-NN top-1 of raw pixels (k = 20, T = 0.07): the floor a learned
/// representation should beat, computed on `backend` in one call (no signal polling).
pub fn raw_pixel_floor<B: Backend>(bank: &Dataset, test: &Dataset, backend: &B) -> Result<f64> {
    let t = Instant::now();
    let raw = in_f32(|| {
        raw_pixel_knn(
            bank,
            test,
            None,
            &KnnConfig::with_k(20.min(bank.len())),
            backend,
        )
    })
    .map_err(ctx("raw-pixel k-NN"))?;
    let top1 = raw[0].top1;
    println!(
        "k-NN floor, raw pixels (k=20, T=0.07): top-1 {:.2}%  ({:.1}s)",
        100.0 * top1,
        t.elapsed().as_secs_f64()
    );
    Ok(top1)
}
