//! Stateless pooling layers (PyTorch: `nn.MaxPool2d`, `nn.AdaptiveAvgPool2d`): thin wrappers
//! over the autograd ops, with no parameters or buffers.

use crate::module::{Entry, EntryMut, Module};
use tessera_autograd::Var;
use tessera_tensor::{Backend, Pool2dOptions};

/// Max pooling over `[n, c, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub options: Pool2dOptions,
}

impl MaxPool2d {
    /// Square window `kernel`, stride and padding on both axes (`nn.MaxPool2d(k, s, p)`).
    pub fn new(kernel: usize, stride: usize, padding: usize) -> Self {
        MaxPool2d {
            options: Pool2dOptions::new(kernel, stride, padding),
        }
    }

    /// `[n, c, h, w] -> [n, c, oh, ow]`.
    pub fn forward<B: Backend>(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        x.max_pool2d(&self.options)
    }
}

/// Adaptive average pooling to a fixed output size (`[1, 1]`: global average pooling).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    pub output_size: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// `nn.AdaptiveAvgPool2d(output_size)`.
    pub fn new(output_size: [usize; 2]) -> Self {
        AdaptiveAvgPool2d { output_size }
    }

    /// `[n, c, h, w] -> [n, c, oh, ow]`.
    pub fn forward<B: Backend>(&self, x: &Var<B>) -> tessera_tensor::Result<Var<B>> {
        x.adaptive_avg_pool2d(self.output_size)
    }
}

macro_rules! stateless_module {
    ($($t:ty),*) => {$(
        impl<B: Backend> Module<B> for $t {
            fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_, B>)) {}
            fn visit_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, EntryMut<'_, B>)) {}
            fn set_training(&mut self, _training: bool) {}
        }
    )*};
}

stateless_module!(MaxPool2d, AdaptiveAvgPool2d);
