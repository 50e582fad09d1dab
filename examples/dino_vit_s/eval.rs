//! `dino_vit_s`'s k-NN evaluation: DINO's weighted k-NN (k = 20, T = 0.07) of a backbone's
//! CLS token and of the mean of its patch tokens, from one forward pass over the bank and the
//! test images, polled for SIGINT/SIGTERM between batches.

use tessera::nn::models::vit::VisionTransformer;
use tessera::run::model::{self, Feature};
use tessera::run::progress::Phase;
use tessera::run::{ctx, session, Result};
use tessera::ssl::augment::Normalize;
use tessera::ssl::data::Dataset;
use tessera::tensor::Backend;

/// The feature the run's headline number is about: what the per-epoch k-NN, `metrics.png`
/// and `knn_eval`'s default report ([`Feature::DINO_HEADLINE`], the patch-token mean).
pub const HEADLINE: Feature = Feature::DINO_HEADLINE;

/// k-NN top-1 of both features of one backbone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KnnPair {
    pub cls: f64,
    pub patch_mean: f64,
}

impl KnnPair {
    pub fn get(&self, f: Feature) -> f64 {
        match f {
            Feature::Cls => self.cls,
            Feature::PatchMean => self.patch_mean,
        }
    }
}

/// The k-NN accuracies of `vit`'s two features; `None` when a signal stopped it.
pub fn knn_pair<B: Backend>(
    vit: &VisionTransformer<B>,
    bank: &Dataset,
    test: &Dataset,
    size: usize,
    norm: &Normalize,
    dev: &B,
) -> Result<Option<KnnPair>> {
    // Training and evaluation use different tensor sizes: give the backend's cached blocks
    // back between the two, so that peak memory is the larger phase, not both.
    dev.empty_cache();
    const BATCH: usize = 64;
    let units = session::chunk_count(bank.len(), BATCH)
        + session::chunk_count(test.len(), BATCH)
        + 2 * session::knn_units(test.len());
    let mut phase = Phase::new("k-NN", units);
    let features = |ds: &Dataset, phase: &mut Phase| {
        session::features_polled(ds.len(), BATCH, phase, |r| {
            let part = ds.subset(&r.collect::<Vec<_>>()).map_err(ctx("features"))?;
            model::token_features(vit, &part, size, Some(norm), dev)
        })
    };
    let Some(tr) = features(bank, &mut phase)? else {
        return Ok(None);
    };
    let Some(te) = features(test, &mut phase)? else {
        return Ok(None);
    };
    let classes = bank.num_classes.max(test.num_classes);
    let mut top1 = [0.0; 2];
    for (slot, f) in top1.iter_mut().zip([Feature::Cls, Feature::PatchMean]) {
        let (a, b) = (f.columns(&tr)?, f.columns(&te)?);
        match session::knn_top1_polled((&a, &bank.labels), (&b, &test.labels), classes, &mut phase)?
        {
            Some(v) => *slot = v,
            None => return Ok(None),
        }
    }
    phase.finish();
    dev.empty_cache();
    Ok(Some(KnnPair {
        cls: top1[0],
        patch_mean: top1[1],
    }))
}
