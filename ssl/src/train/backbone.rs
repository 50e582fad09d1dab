//! The [`Backbone`] trait: a feature extractor `[b, c, h, w] -> [b, embed_dim]`.

use tessera_autograd::Var;
use tessera_nn::models::resnet::ResNet;
use tessera_nn::models::vit::VisionTransformer;
use tessera_nn::module::Module;
use tessera_tensor::{Backend, Result};

/// A feature extractor that DINO and BYOL put a head on: images `[b, c, h, w]` to features
/// `[b, embed_dim]`.
///
/// `forward_features` means the same here and on the models' inherent methods: one pooled
/// vector per image, the CLS token for a ViT, the global average pool for a ResNet (never
/// the token sequence or the classifier's logits).
///
/// `&mut self` because a backbone with BatchNorm records batch statistics in training mode.
/// `Clone` so that a trainer can compute a step on copies and commit only on success.
pub trait Backbone<B: Backend>: Module<B> + Clone {
    /// Features `[b, embed_dim]` of a batch of images.
    fn forward_features(&mut self, x: &Var<B>) -> Result<Var<B>>;

    /// The width of [`Backbone::forward_features`]'s output.
    fn embed_dim(&self) -> usize;

    /// Removes a classifier that self-supervised training does not use (DINO:
    /// `student.fc, student.head = nn.Identity(), nn.Identity()`), so that its parameters are
    /// neither optimized nor saved. The trainers call it on construction. Default: nothing.
    fn remove_classifier(&mut self) {}
}

/// DINO's ViT backbone: the CLS token after the final norm (`VisionTransformer.forward`),
/// the same `[b, D]` as the inherent [`VisionTransformer::forward_features`] (every token is
/// [`VisionTransformer::forward_tokens`]).
impl<B: Backend> Backbone<B> for VisionTransformer<B> {
    fn forward_features(&mut self, x: &Var<B>) -> Result<Var<B>> {
        VisionTransformer::forward_features(self, x)
    }

    fn embed_dim(&self) -> usize {
        VisionTransformer::embed_dim(self)
    }
}

/// torchvision's ResNet without `fc`: the globally average-pooled features.
impl<B: Backend> Backbone<B> for ResNet<B> {
    fn forward_features(&mut self, x: &Var<B>) -> Result<Var<B>> {
        ResNet::forward_features(self, x)
    }

    fn embed_dim(&self) -> usize {
        self.feature_dim()
    }

    fn remove_classifier(&mut self) {
        self.fc = None;
        self.config.num_classes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_nn::models::resnet::ResNetConfig;
    use tessera_nn::ModuleExt;
    use tessera_tensor::{Cpu, DType, Rng, Tensor};

    #[test]
    fn resnet_backbone_drops_fc_and_pools() {
        let cfg = ResNetConfig {
            in_channels: 1,
            small_stem: true,
            ..ResNetConfig::resnet18(10)
        };
        let mut m = ResNet::new(cfg, DType::F32, &mut Rng::new(0), &Cpu).unwrap();
        m.remove_classifier();
        assert!(m.named_params().iter().all(|(n, _)| !n.starts_with("fc")));
        let x = Var::constant(Tensor::ones(&[2, 1, 4, 4], DType::F32, &Cpu).unwrap());
        let f = Backbone::forward_features(&mut m, &x).unwrap();
        assert_eq!(f.shape(), [2, Backbone::<Cpu>::embed_dim(&m)]);
        assert_eq!(Backbone::<Cpu>::embed_dim(&m), 512);
    }
}
