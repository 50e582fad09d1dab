//! Constant padding (PyTorch: `F.pad(x, pads, value=v)`).

use crate::backend::Backend;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Pads with `value`. `pads` lists `(before, after)` pairs starting from the **last** dim,
    /// as PyTorch's `F.pad`: `[left, right, top, bottom]` pads the last two dims.
    pub fn pad(&self, pads: &[usize], value: f64) -> Result<Self> {
        let _ = (pads, value);
        Err(crate::Error::Unsupported {
            op: "pad",
            backend: "any",
            msg: "being written".into(),
        })
    }
}
