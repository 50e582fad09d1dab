//! Models built from the layers, with the reference implementations' parameter names.

pub mod resnet;
pub mod vit;
