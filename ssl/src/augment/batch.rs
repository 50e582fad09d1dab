//! Collating augmented views into `[b, c, h, w]` tensors.
//!
//! DINO's loader yields, per batch, one tensor per view index (`[b, c, h, w]`, global crops
//! first). Its `MultiCropWrapper` then concatenates *consecutive views of one resolution* and
//! forwards each group once: the two global crops as one `[2b, c, 224, 224]` batch, the local
//! crops as one `[n_local * b, c, 96, 96]` batch, view-major (all samples of view 0, then all
//! of view 1, ...). [`collate_views`] gives the first form, [`batch_by_resolution`] the second.

use super::Image;
use crate::error::{config_err, Result};
use alloc::vec::Vec;
use core::ops::Range;
use tessera_tensor::{Backend, Tensor};

/// Stacks equal-shaped images into one `[b, c, h, w]` f32 tensor.
pub fn stack_images<B: Backend>(images: &[&Image], backend: &B) -> Result<Tensor<B>> {
    let Some(first) = images.first() else {
        return Err(config_err!("stack_images: no images"));
    };
    let shape = first.shape();
    let mut data = Vec::with_capacity(images.len() * first.data().len());
    for (i, img) in images.iter().enumerate() {
        if img.shape() != shape {
            return Err(config_err!(
                "stack_images: image {i} has shape {:?}, image 0 has {shape:?}",
                img.shape()
            ));
        }
        data.extend_from_slice(img.data());
    }
    let [c, h, w] = shape;
    Ok(Tensor::from_vec(data, &[images.len(), c, h, w], backend)?)
}

/// Checks that every sample has the same number of views and returns it.
fn views_per_sample(samples: &[Vec<Image>]) -> Result<usize> {
    let Some(first) = samples.first() else {
        return Err(config_err!("collate: empty batch"));
    };
    let n = first.len();
    if n == 0 {
        return Err(config_err!("collate: sample 0 has no views"));
    }
    if let Some((i, s)) = samples.iter().enumerate().find(|(_, s)| s.len() != n) {
        return Err(config_err!(
            "collate: sample {i} has {} views, sample 0 has {n}",
            s.len()
        ));
    }
    Ok(n)
}

/// One tensor per view index: `out[v]` is `[b, c, h, w]` holding view `v` of every sample
/// (PyTorch's default collate of DINO's list of crops).
pub fn collate_views<B: Backend>(samples: &[Vec<Image>], backend: &B) -> Result<Vec<Tensor<B>>> {
    let n = views_per_sample(samples)?;
    (0..n)
        .map(|v| {
            let imgs: Vec<&Image> = samples.iter().map(|s| &s[v]).collect();
            stack_images(&imgs, backend)
        })
        .collect()
}

/// Consecutive views of one resolution, batched together.
#[derive(Clone, Debug)]
pub struct ResolutionGroup<B: Backend> {
    /// The view indices in this group.
    pub views: Range<usize>,
    /// `[views.len() * b, c, h, w]`, view-major: row `k * b + i` is view `views.start + k`
    /// of sample `i`.
    pub batch: Tensor<B>,
}

/// Groups consecutive views of equal shape (DINO: the global crops, then the local crops)
/// into one view-major tensor each, as `MultiCropWrapper` does with `torch.cat`.
pub fn batch_by_resolution<B: Backend>(
    samples: &[Vec<Image>],
    backend: &B,
) -> Result<Vec<ResolutionGroup<B>>> {
    let n = views_per_sample(samples)?;
    let mut groups = Vec::new();
    let mut start = 0;
    while start < n {
        let shape = samples[0][start].shape();
        let mut end = start + 1;
        while end < n && samples[0][end].shape() == shape {
            end += 1;
        }
        // View-major order: every sample's view `start`, then every sample's view `start+1`.
        let imgs: Vec<&Image> = (start..end)
            .flat_map(|v| samples.iter().map(move |s| &s[v]))
            .collect();
        let batch = stack_images(&imgs, backend)?;
        groups.push(ResolutionGroup {
            views: start..end,
            batch,
        });
        start = end;
    }
    Ok(groups)
}
