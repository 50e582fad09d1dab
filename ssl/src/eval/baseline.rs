//! The raw-pixel k-NN baseline: the same classifier on flattened pixels. It is the floor a
//! self-supervised model must beat (Fashion-MNIST: 84.6% top-1 at k = 20 on the full split,
//! see the design notes).

#[cfg(feature = "std")]
use super::knn::{knn_classifier, KnnConfig, KnnResult};
use crate::augment::Normalize;
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use tessera_tensor::{Backend, Tensor};

/// Flattened pixel features `[n, c * h * w]` (f32) from `n` images of `channels` planes
/// stored as bytes: `v / 255`, then `normalize` per channel if given (`(v - mean) / std`).
/// Cosine similarity ignores the overall scale but not the mean shift, so normalizing does
/// change the neighbours.
pub fn pixel_features<B: Backend>(
    images: &[u8],
    n: usize,
    channels: usize,
    normalize: Option<&Normalize>,
    backend: &B,
) -> Result<Tensor<B>> {
    let per = n.checked_mul(channels).unwrap_or(0);
    if per == 0 || images.len() % per != 0 {
        return Err(config_err!(
            "pixel_features: {} bytes do not split into {n} images of {channels} channels",
            images.len()
        ));
    }
    let dim = images.len() / n;
    let plane = dim / channels;
    if let Some(nm) = normalize {
        if nm.mean.len() != 1 && nm.mean.len() != channels {
            return Err(config_err!(
                "pixel_features: {} normalization channels for {channels}-channel images",
                nm.mean.len()
            ));
        }
    }
    // Four bytes of features per byte of pixels: check the budget before allocating them.
    tessera_tensor::memory::check_bytes("raw-pixel features", images.len().checked_mul(4))?;
    let data: Vec<f32> = images
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            let v = f32::from(b) / 255.0;
            match normalize {
                Some(nm) => {
                    let c = if nm.mean.len() == 1 {
                        0
                    } else {
                        (i % dim) / plane
                    };
                    (v - nm.mean[c]) / nm.std[c]
                }
                None => v,
            }
        })
        .collect();
    // A zero or non-finite `std` in `normalize` would make features infinite or NaN.
    if let Some((r, c, v)) = data
        .iter()
        .position(|x| !x.is_finite())
        .map(|i| (i / dim, i % dim, data[i]))
    {
        return Err(config_err!(
            "pixel_features: feature {v} at (row {r}, col {c}) is not finite (normalization \
             std {:?})",
            normalize.map(|nm| &nm.std)
        ));
    }
    Ok(Tensor::from_vec(data, &[n, dim], backend)?)
}

/// k-NN on raw pixels of two datasets (features from [`pixel_features`]).
#[cfg(feature = "std")]
pub fn raw_pixel_knn<B: Backend>(
    train: &crate::data::Dataset,
    test: &crate::data::Dataset,
    normalize: Option<&Normalize>,
    cfg: &KnnConfig,
    backend: &B,
) -> Result<Vec<KnnResult>> {
    if train.image_shape() != test.image_shape() {
        return Err(config_err!(
            "raw_pixel_knn: train images are {:?}, test images {:?}",
            train.image_shape(),
            test.image_shape()
        ));
    }
    let c = train.image_shape()[0];
    let tr = pixel_features(&train.images, train.len(), c, normalize, backend)?;
    let te = pixel_features(&test.images, test.len(), c, normalize, backend)?;
    let classes = train.num_classes.max(test.num_classes);
    knn_classifier(&tr, &train.labels, &te, &test.labels, classes, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::Cpu;

    /// A zero std (the fields are public, so `Normalize::new`'s check can be bypassed) used
    /// to give infinite features that the k-NN then ranked silently.
    #[test]
    fn non_finite_pixel_features_are_refused() {
        let nm = Normalize {
            mean: alloc::vec![0.0],
            std: alloc::vec![0.0],
        };
        let e = pixel_features(&[0, 0, 0, 7], 2, 1, Some(&nm), &Cpu).unwrap_err();
        let msg = alloc::string::ToString::to_string(&e);
        assert!(
            msg.contains("(row 0, col 0)") && msg.contains("NaN"),
            "{msg}"
        );
    }
}
