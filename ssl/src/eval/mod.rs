//! Evaluation of frozen features: DINO's weighted k-NN classifier, the linear probe, the
//! CLS attention maps of the last ViT block, and the raw-pixel
//! baseline that learned features must beat.

mod attention;
mod baseline;
mod budget;
mod finite;
mod knn;
mod linear_probe;

pub use attention::cls_attention_maps;
pub use baseline::pixel_features;
#[cfg(feature = "std")]
pub use baseline::raw_pixel_knn;
pub use budget::{vit_batch_within_budget, vit_image_bytes};
pub use finite::check_finite;
pub use knn::{knn_classifier, KnnConfig, KnnResult};
pub use linear_probe::{linear_probe, LinearProbeConfig, LinearProbeResult};
