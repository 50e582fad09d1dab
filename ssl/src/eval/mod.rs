//! Evaluation of frozen features: DINO's weighted k-NN classifier and the raw-pixel
//! baseline that learned features must beat.

mod baseline;
mod knn;

pub use baseline::pixel_features;
#[cfg(feature = "std")]
pub use baseline::raw_pixel_knn;
pub use knn::{knn_classifier, l2_normalize, KnnConfig, KnnResult};
