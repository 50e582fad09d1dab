//! # tessera-ssl
//!
//! Self-supervised learning as the official DINO and BYOL code defines it: the objectives
//! ([`dino::DinoLoss`], [`byol::byol_loss`]), the heads ([`dino::DinoHead`], BYOL's
//! projector/predictor), the teacher/target EMA ([`ema`]), dataset readers, the multi-crop
//! and BYOL augmentation pipelines, and DINO's k-NN evaluation. The training loops that put
//! these together are the examples at the repository root.
//!
//! | Tessera | Official code |
//! |---|---|
//! | [`data::Dataset`], [`data::read_idx`], [`data::read_cifar10`], [`data::read_cifar100`] | `torchvision.datasets.MNIST` / `FashionMNIST` / `CIFAR10` / `CIFAR100` |
//! | [`data::read_image_folder`] | `torchvision.datasets.ImageFolder` |
//! | [`augment::RandomResizedCrop`], [`augment::ColorJitter`], [`augment::RandomGrayscale`], [`augment::Normalize`], ... | `torchvision.transforms` |
//! | [`augment::GaussianBlur`], [`augment::RandomSolarize`] | DINO `utils.GaussianBlur`, `utils.Solarization` |
//! | [`augment::DataAugmentationDino`] | DINO `main_dino.py` `DataAugmentationDINO` |
//! | [`augment::ByolAugmentation`] | BYOL's asymmetric view pipelines (Grill et al. 2020) |
//! | [`augment::batch_by_resolution`] | DINO `utils.MultiCropWrapper` (one forward per crop size) |
//! | [`eval::knn_classifier`] | DINO `eval_knn.py` `knn_classifier` |
//! | [`eval::linear_probe`] | DINO `eval_linear.py` (`LinearClassifier`, SGD, cosine lr) on given features |
//! | [`eval::cls_attention_maps`] | DINO `visualize_attention.py` (`get_last_selfattention`, CLS row per head) |
//! | [`dino::DinoLoss`], [`dino::DinoHead`] | DINO `main_dino.py` `DINOLoss`, `vision_transformer.py` `DINOHead` |
//! | [`byol::byol_loss`] | BYOL's `2 − 2·cos` regression loss, symmetrized |
//! | [`ema::ema_update`] | DINO's teacher update / BYOL's target update |
//! | [`train::DinoTrainer`], [`train::ByolTrainer`] | DINO `main_dino.py` `train_one_epoch`; BYOL's training step |
//!
//! ## Features
//! - `std` (default): the [`data`] module (files, gzip via `flate2`, PNG/JPEG via `image`)
//!   and `std::error::Error` for [`Error`].
//! - Without `std` the crate is `no_std` + `alloc`: augmentations work on host
//!   [`augment::Image`]s and k-NN on tensors of any [`tessera_tensor::Backend`].
//!
//! ## Example: weighted k-NN on tiny features
//!
//! ```
//! use tessera_ssl::eval::{knn_classifier, KnnConfig};
//! use tessera_tensor::{Cpu, Tensor};
//! # fn main() -> tessera_ssl::Result<()> {
//! // Three classes along three axes; features need not be normalized.
//! let train = Tensor::from_vec(
//!     vec![1.0f32, 0.0, 0.0, 2.0, 0.1, 0.0, 0.0, 1.0, 0.0, 0.1, 3.0, 0.0, 0.0, 0.0, 1.0],
//!     &[5, 3],
//!     &Cpu,
//! )?;
//! let labels = [0, 0, 1, 1, 2];
//! let test = Tensor::from_vec(vec![0.9f32, 0.2, 0.0, 0.0, 0.1, 0.7], &[2, 3], &Cpu)?;
//! let cfg = KnnConfig { ks: vec![1, 3], temperature: 0.07, chunk_size: 1 };
//! let results = knn_classifier(&train, &labels, &test, &[0, 2], 3, &cfg)?;
//! assert_eq!(results[0].predictions, vec![0, 2]); // k = 1
//! assert_eq!(results[1].top1, 1.0); // k = 3: the weights exp(sim / 0.07) favour the nearest
//! assert_eq!(results[1].top5, None); // fewer than 5 classes
//! # Ok(()) }
//! ```
//!
//! ## Example: DINO multi-crop views of one image
//!
//! ```
//! use tessera_ssl::augment::{batch_by_resolution, DataAugmentationDino, DinoAugConfig, Image};
//! use tessera_tensor::{Cpu, Rng};
//! # fn main() -> tessera_ssl::Result<()> {
//! let img = Image::filled(1, 28, 28, 0.5)?; // e.g. a Fashion-MNIST image
//! let cfg = DinoAugConfig { local_crops_number: 4, normalize: None, ..DinoAugConfig::with_sizes(28, 12) };
//! let dino = DataAugmentationDino::new(&cfg)?;
//! let mut rng = Rng::new(0);
//! let views = dino.apply(&img, &mut rng)?; // 2 global 28x28 + 4 local 12x12
//! let groups = batch_by_resolution(&[views.clone(), views], &Cpu)?;
//! assert_eq!(groups[0].batch.shape(), &[4, 1, 28, 28]); // 2 views x 2 samples
//! assert_eq!(groups[1].batch.shape(), &[8, 1, 12, 12]);
//! # Ok(()) }
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod augment;
#[cfg(feature = "std")]
pub mod data;
mod error;
pub mod eval;

/// The one L2 normalization of the crate (`F.normalize(x, p=2, dim=-1, eps)`), used by DINO's
/// head, BYOL's loss and the k-NN evaluation.
pub use dino::l2_normalize;
pub use error::{Error, Result};

// Self-supervised objectives: DINO and BYOL losses and heads, and the teacher EMA.
pub mod byol;
pub mod dino;
pub mod ema;
pub mod train;
