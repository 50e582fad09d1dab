//! Front-end pieces shared by the ops on the spatial plane of NCHW tensors (pooling and
//! interpolation): the input check and the output's construction.

use crate::backend::Backend;
use crate::{Result, Tensor};

impl<B: Backend> Tensor<B> {
    /// Checks `self` is `[n, c, h, w]` with a non-empty `h × w` plane; returns `[h, w]`.
    pub(crate) fn check_nchw_plane(&self, op: &'static str) -> Result<[usize; 2]> {
        self.check_rank(op, 4)?;
        let s = self.shape();
        if s[2] == 0 || s[3] == 0 {
            return Err(crate::shape_err!(
                op,
                "input {s:?} has an empty spatial dim"
            ));
        }
        Ok([s[2], s[3]])
    }

    /// The `[n, c, hw[0], hw[1]]` tensor in `storage`, with `n` and `c` from `self` (rank 4),
    /// on `self`'s backend.
    pub(crate) fn with_plane(&self, storage: B::Storage, hw: [usize; 2]) -> Self {
        let s = self.shape();
        Self::from_storage(storage, &[s[0], s[1], hw[0], hw[1]], self.backend())
    }
}
