//! The backend abstraction: what a device (the CPU reference, CUDA, an embedder's runtime)
//! implements so that every tensor op runs on it.
//!
//! # Design
//!
//! A backend owns *storage* (an opaque buffer of elements in its memory) and executes
//! *primitives* on storages described by [`Layout`]s. The contract is small on purpose:
//!
//! - **Required methods** are the primitives: transfers to and from the host, strided copies,
//!   elementwise maps, reductions, batched GEMM, gather/scatter, the im2col pair for
//!   convolutions, pooling and bicubic interpolation. Each takes input layouts that may be
//!   arbitrary views (transposed, sliced, broadcast with stride 0) and returns a fresh,
//!   contiguous storage. Inputs always have the dtype and shapes the op needs: the
//!   [`Tensor`] front end checks them and reports errors, so a backend only
//!   reports failures of its own (out of memory, a dtype it has no kernel for). These methods
//!   are public, though, so the CPU backend checks everything its kernels rely on again
//!   (`cpu/checks.rs`): a direct call with inconsistent arguments is an `Err`, never an
//!   out-of-bounds access. Another backend must do the same before launching unchecked code.
//! - **Provided methods** are composite ops (softmax, layer norm, batch norm, GELU and its
//!   derivative, convolution and its two backward products) with a default built from the
//!   primitives. A backend may override any of them with a fused kernel; the default stays
//!   the specification that the override is tested against.
//!
//! # Memory model and synchronization (what a device backend relies on)
//!
//! - **Ownership.** A storage is owned by the tensors that view it (an `Arc`). When the last
//!   one is dropped the storage is dropped: a backend returns the memory to its own cache
//!   (the CPU's size-class pool, a CUDA stream-ordered caching allocator), so a steady
//!   training loop stops asking the system for memory. Outputs that a kernel overwrites
//!   completely come from [`Backend::alloc_uninit`], without a fill.
//! - **In place.** Parameters, gradient buffers and optimizer state are updated in place
//!   through [`Backend::unary_inplace`], [`Backend::binary_inplace`] and the fused update
//!   steps ([`Backend::adamw_update`], [`Backend::sgd_update`], [`Backend::ema_update`]). The
//!   front end ([`Tensor::binary_`] and friends) makes the storage unique first (copy on
//!   write), so an in-place primitive never changes a value another tensor can see.
//! - **Ordering.** Every primitive may run asynchronously, in issue order on one queue (a
//!   CUDA stream). Only [`Backend::to_host`] waits for the data it reads, and
//!   [`Backend::synchronize`] waits for everything. Scalars (learning rates, momenta, step
//!   counts) travel as kernel arguments (`f64` fields of ops), never as uploaded tensors, and
//!   nothing in a training step reads the device unless the caller asks (the loss to print).
//!
//! # Must implement vs may override
//!
//! Every item of [`Backend`] and [`BackendStorage`] is in exactly one row of this table. A
//! test of the worked example below (`backends/counting/tests/trait_list.rs`) parses this
//! file and fails if a method of either trait is missing here, is listed under the wrong
//! kind, or is listed but not in the traits; so a method added to the trait must be added
//! here too.
//!
//! | kind | methods | PyTorch counterpart |
//! |---|---|---|
//! | must implement (storage) | `Storage` (the associated type), `BackendStorage::dtype`, `BackendStorage::len` | `Storage`, `StorageImpl::nbytes` |
//! | must implement (identity) | `name` | `tensor.device.type` |
//! | must implement (transfers and copies) | `from_host`, `to_host`, `copy_into`, `cast` | `tensor.to('cuda')`, `tensor.cpu()`, `copy_`, `tensor.to(dtype)` |
//! | must implement (elementwise) | `unary`, `binary`, `compare`, `where_cond` | the `TensorIterator` kernels, `torch.where` |
//! | must implement (reductions and GEMM) | `reduce`, `matmul` | `sum`/`amax`/`var` kernels, `bmm` |
//! | must implement (indexing) | `index_select`, `gather`, `scatter_add` | the same names |
//! | must implement (images) | `im2col`, `col2im`, `max_pool2d`, `avg_pool2d`, `avg_pool2d_backward`, `adaptive_avg_pool2d`, `adaptive_avg_pool2d_backward`, `upsample_bicubic2d`, `upsample_bicubic2d_backward` | `im2col`/`col2im`, `max_pool2d_with_indices`, `avg_pool2d(_backward)`, `adaptive_avg_pool2d(_backward)`, `upsample_bicubic2d(_backward)` |
//! | may override (storage) | `BackendStorage::is_empty` | `numel() == 0` |
//! | may override (device) | `device_name`, `synchronize`, `empty_cache`, `alloc_uninit`, `full` | `torch.device('cuda:1')`, `torch.cuda.synchronize`, `torch.cuda.empty_cache`, `torch.empty`, `torch.full` |
//! | may override (in place) | `unary_inplace`, `binary_inplace` | `x.mul_()`, `x.add_()` |
//! | may override (fused updates) | `adamw_update`, `sgd_update`, `ema_update` | `AdamW(fused=True)`, `SGD(foreach=True)`, `torch._foreach_lerp_` |
//! | may override (composites) | `softmax`, `log_softmax`, `gelu`, `gelu_tanh`, `layer_norm`, `batch_norm_stats`, `batch_norm_apply`, `conv2d`, `matmul_bias`, `sum_of_squares` | `CompositeImplicitAutograd` ops, fused kernels, `addmm`, the reduction of `linalg.vector_norm` |
//! | may override (backward) | `softmax_backward`, `log_softmax_backward`, `gelu_backward`, `gelu_tanh_backward`, `layer_norm_backward`, `layer_norm_param_backward`, `layer_norm_grads`, `batch_norm_backward`, `conv2d_backward_input`, `conv2d_backward_weight`, `matmul_row_sums` | `_softmax_backward_data`, `native_layer_norm_backward`, `native_batch_norm_backward`, `convolution_backward`, cuBLASLt's `BGRADA` epilogue |
//!
//! What the defaults cost, and so what a device backend usually overrides first:
//! `alloc_uninit` fills with zeros and `full` fills on the host and uploads (one
//! `from_host` per call); `unary_inplace`/`binary_inplace` compute out of place and copy back
//! (`copy_into`); the fused updates and the composites run several primitives each (AdamW
//! 21 per parameter, 7 of them `copy_into`s back; softmax 5), each a kernel launch and a
//! temporary.
//! Overrides may round differently from the defaults (a fused softmax sums once), which is
//! why the conformance kit compares against the CPU within a tolerance table rather than
//! bit for bit. The [`Cpu`](crate::Cpu) overrides `full`, `alloc_uninit`, `empty_cache`, the
//! in-place ops, `adamw_update`, `ema_update`, softmax, log-softmax, GELU and layer norm (each
//! with its backward), `matmul_bias` (the bias added inside its GEMM), `matmul_row_sums`
//! (the bias gradient summed while the weight gradient's GEMM packs `dYᵀ`) and
//! `sum_of_squares` (squared as summed). The CUDA backend
//! overrides every method of the device, in-place and fused-update rows, softmax,
//! log-softmax and GELU (each with its backward), layer norm's forward and input gradient,
//! `batch_norm_apply`, and the convolution with both its gradients; it leaves `gelu_tanh` (and its backward),
//! `layer_norm_param_backward`, `layer_norm_grads`, `batch_norm_stats`,
//! `batch_norm_backward`, `matmul_bias`, `matmul_row_sums` and `sum_of_squares` to their
//! defaults.
//!
//! # Writing a backend: the worked example
//!
//! `backends/counting` (package `tessera-backend-counting`, not published) is a backend
//! written the way an embedder outside this repository writes one, against the public API of
//! this crate only: `CountingBackend` wraps [`Cpu`](crate::Cpu), implements exactly the
//! "must implement" rows (its storage wraps [`CpuStorage`](crate::CpuStorage) behind a private
//! field) and counts every primitive call by name, leaving every "may override" row to its
//! default. Its tests run the conformance kit within the default tolerance table and train a
//! few DINO steps to the CPU's numbers; its example
//! `cargo run -p tessera-backend-counting --example count_dino_step` prints which primitives
//! one DINO step of a tiny ViT calls, and how often. A new backend starts from the same
//! skeleton: a storage type, the primitives, `tessera-testkit` as a dev-dependency and one
//! test file calling its checks; then overrides where the counts show time is spent.
//!
//! Nothing here knows about gradients: autodiff is a layer above (`tessera-autograd`). Storage
//! is reachable only through [`Backend::from_host`] and [`Backend::to_host`], as GPU memory is;
//! the conformance kit (`tessera-testkit`, a dev-only workspace crate) runs the whole op suite,
//! the gradient checks and whole DINO/BYOL steps on a backend whose storage is opaque and
//! that implements only the required methods, to prove it. A new backend runs the same kit.
//!
//! PyTorch analogue: a dispatch key with its kernels (`at::native::*_cpu`), plus the
//! `CompositeImplicitAutograd` ops that are written in terms of other ops.

pub mod composite;
mod op_kinds;
mod params;
pub mod update;

pub use op_kinds::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
pub use params::{Conv2dParams, PoolParams, ResizeParams};
pub use update::{AdamWStep, SgdStep};

use crate::dtype::DType;
use crate::layout::Layout;
use crate::{BatchNormGrads, BatchNormNeeds, HostBuffer, NormParamGrads, Result, Tensor};
use alloc::string::String;
use core::fmt::Debug;

/// A storage's own description of itself.
pub trait BackendStorage: Debug + Send + Sync + 'static {
    /// The dtype of the elements.
    fn dtype(&self) -> DType;
    /// The number of elements allocated.
    fn len(&self) -> usize;
    /// True if no element is allocated.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A device that stores tensors and runs the primitives on them.
///
/// The handle is cheap to clone (a unit struct for the CPU, a reference-counted context and
/// stream for CUDA); two handles compare equal when they address the same device.
pub trait Backend: Clone + Debug + PartialEq + Send + Sync + 'static {
    /// An allocation in this backend's memory.
    type Storage: BackendStorage;

    /// The kind of backend, for messages: `"cpu"`, `"cuda"`.
    fn name(&self) -> &'static str;

    /// This device, with its ordinal where there are several: `"cpu"`, `"cuda:1"` (PyTorch:
    /// `str(tensor.device)`). Default: [`Backend::name`].
    fn device_name(&self) -> String {
        String::from(self.name())
    }

    /// Waits until every operation issued so far on this device has finished (PyTorch:
    /// `torch.cuda.synchronize()`). The only blocking call besides [`Backend::to_host`].
    /// Default: nothing to wait for (synchronous backends such as the CPU).
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }

    /// Returns the memory this backend keeps cached for reuse to the system (PyTorch:
    /// `torch.cuda.empty_cache()`); tensors alive are not touched. Default: nothing cached.
    fn empty_cache(&self) {}

    /// A contiguous storage of `len` elements whose contents are unspecified, for outputs a
    /// kernel overwrites completely (PyTorch: `torch.empty`). Default: a zero fill.
    fn alloc_uninit(&self, len: usize, dtype: DType) -> Result<Self::Storage> {
        self.full(len, 0.0, dtype)
    }

    // ---------------------------------------------------------------- transfers and copies

    /// Moves a host buffer into this backend's memory (a copy to the device; free on the CPU).
    // Named for what it does to the data, not a constructor of `Self`.
    #[allow(clippy::wrong_self_convention)]
    fn from_host(&self, data: HostBuffer) -> Result<Self::Storage>;

    /// Copies the elements of a (possibly strided) view to the host, in row-major order.
    fn to_host(&self, storage: &Self::Storage, layout: &Layout) -> Result<HostBuffer>;

    /// Copies the elements of `src` viewed through `src_layout` into the positions of `dst`
    /// viewed through `dst_layout` (same shape). `dst_layout` must not overlap itself.
    /// This one mutating primitive builds `contiguous`, concat, stack and pad.
    fn copy_into(
        &self,
        src: &Self::Storage,
        src_layout: &Layout,
        dst: &mut Self::Storage,
        dst_layout: &Layout,
    ) -> Result<()>;

    /// A contiguous copy of a view, converted to `dtype` (the same dtype makes a plain copy).
    fn cast(&self, storage: &Self::Storage, layout: &Layout, dtype: DType)
        -> Result<Self::Storage>;

    // ---------------------------------------------------------------- elementwise

    /// `op(x)` for every element of a float view.
    fn unary(&self, op: UnaryOp, x: &Self::Storage, layout: &Layout) -> Result<Self::Storage>;

    /// `op(a, b)` for two float views of the same shape (broadcast views have stride 0).
    fn binary(
        &self,
        op: BinaryOp,
        a: &Self::Storage,
        a_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// `op(a, b)` as U8 0/1 for two views of the same shape and dtype.
    fn compare(
        &self,
        op: CmpOp,
        a: &Self::Storage,
        a_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// `cond ? a : b` with a U8 condition; all three views have the same shape.
    #[allow(clippy::too_many_arguments)]
    fn where_cond(
        &self,
        cond: &Self::Storage,
        cond_layout: &Layout,
        a: &Self::Storage,
        a_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
    ) -> Result<Self::Storage>;

    // ---------------------------------------------------------------- reductions and GEMM

    /// Reduces `axes` (sorted, distinct, non-empty) of a view. The result is contiguous with
    /// the input's shape where every reduced dim has size 1 (keepdim). Sums of f16/bf16
    /// accumulate in f32.
    fn reduce(
        &self,
        op: ReduceOp,
        x: &Self::Storage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<Self::Storage>;

    /// Batched matrix product: `a` is `[batch.., m, k]`, `b` is `[batch.., k, n]` with the same
    /// batch dims (broadcast batch dims arrive as stride-0 views). Result `[batch.., m, n]`.
    fn matmul(
        &self,
        a: &Self::Storage,
        a_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
    ) -> Result<Self::Storage>;

    // ---------------------------------------------------------------- indexing

    /// `out[.., i, ..] = x[.., index[i], ..]` along `axis`; `index` is a 1-D I64 view.
    fn index_select(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        axis: usize,
        index: &Self::Storage,
        index_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// `out[p] = x[p with p[axis] replaced by index[p]]`; `index` (I64) has the output's shape
    /// and the same rank as `x` (PyTorch: `torch.gather`).
    fn gather(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        axis: usize,
        index: &Self::Storage,
        index_layout: &Layout,
    ) -> Result<Self::Storage>;

    /// `dst[p with p[axis] replaced by index[p]] += src[p]` for every position `p` of `index`
    /// (PyTorch: `scatter_add_`). `dst` is contiguous with shape `dst_shape`.
    #[allow(clippy::too_many_arguments)]
    fn scatter_add(
        &self,
        dst: &mut Self::Storage,
        dst_shape: &[usize],
        axis: usize,
        index: &Self::Storage,
        index_layout: &Layout,
        src: &Self::Storage,
        src_layout: &Layout,
    ) -> Result<()>;

    // ---------------------------------------------------------------- images (NCHW)

    /// Unfolds convolution patches: `[n, c, h, w]` to `[n, c*kh*kw, oh*ow]` (zero padding).
    fn im2col(&self, x: &Self::Storage, layout: &Layout, p: &Conv2dParams)
        -> Result<Self::Storage>;

    /// The adjoint of [`Backend::im2col`]: sums `[n, c*kh*kw, oh*ow]` columns back into a
    /// `[n, c, h, w]` image.
    fn col2im(
        &self,
        cols: &Self::Storage,
        layout: &Layout,
        p: &Conv2dParams,
    ) -> Result<Self::Storage>;

    /// Max pooling; returns the values and the I64 flat index (`h*w` plane) of each maximum.
    fn max_pool2d(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        p: &PoolParams,
    ) -> Result<(Self::Storage, Self::Storage)>;

    /// Average pooling (padding counted in the divisor iff `p.count_include_pad`).
    fn avg_pool2d(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        p: &PoolParams,
    ) -> Result<Self::Storage>;

    /// The adjoint of [`Backend::avg_pool2d`]: spreads `[n, c, oh, ow]` back to `[n, c, h, w]`.
    fn avg_pool2d_backward(
        &self,
        grad: &Self::Storage,
        layout: &Layout,
        p: &PoolParams,
    ) -> Result<Self::Storage>;

    /// Adaptive average pooling of `[n, c, h, w]` to `[n, c, oh, ow]` (PyTorch's bins:
    /// `start = floor(i*h/oh)`, `end = ceil((i+1)*h/oh)`).
    fn adaptive_avg_pool2d(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        out_hw: [usize; 2],
    ) -> Result<Self::Storage>;

    /// The adjoint of [`Backend::adaptive_avg_pool2d`], back to `in_hw`.
    fn adaptive_avg_pool2d_backward(
        &self,
        grad: &Self::Storage,
        layout: &Layout,
        in_hw: [usize; 2],
    ) -> Result<Self::Storage>;

    /// Bicubic resampling of `[n, c, h, w]` with PyTorch's semantics (see [`ResizeParams`]).
    fn upsample_bicubic2d(
        &self,
        x: &Self::Storage,
        layout: &Layout,
        p: &ResizeParams,
    ) -> Result<Self::Storage>;

    /// The adjoint of [`Backend::upsample_bicubic2d`], from `[n, c, oh, ow]` to `[n, c, h, w]`.
    fn upsample_bicubic2d_backward(
        &self,
        grad: &Self::Storage,
        layout: &Layout,
        p: &ResizeParams,
    ) -> Result<Self::Storage>;

    // ---------------------------------------------------------------- in place
    // Defaults compute out of place and copy back; a device overrides them to skip the copy.

    /// `x = op(x)` over a view that does not overlap itself (no stride-0 dims).
    fn unary_inplace(&self, op: UnaryOp, x: &mut Self::Storage, layout: &Layout) -> Result<()> {
        let out = self.unary(op, x, layout)?;
        self.copy_into(&out, &Layout::contiguous(layout.shape()), x, layout)
    }

    /// `a = op(a, b)` where `a`'s view does not overlap itself and `b`'s view has the same
    /// shape (broadcast views of `b` arrive with stride 0).
    fn binary_inplace(
        &self,
        op: BinaryOp,
        a: &mut Self::Storage,
        a_layout: &Layout,
        b: &Self::Storage,
        b_layout: &Layout,
    ) -> Result<()> {
        let out = self.binary(op, a, a_layout, b, b_layout)?;
        self.copy_into(&out, &Layout::contiguous(a_layout.shape()), a, a_layout)
    }

    // ---------------------------------------------------------------- fused updates
    // One call per parameter, in place; defaults in `update.rs` compose in-place primitives.
    // Arguments are checked by the callers in `Tensor` (same shape, dtype and device).

    /// One AdamW step of one parameter (PyTorch: `torch.optim.AdamW`, see [`AdamWStep`]).
    fn adamw_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        exp_avg: &mut Tensor<Self>,
        exp_avg_sq: &mut Tensor<Self>,
        step: &AdamWStep,
    ) -> Result<()> {
        update::adamw(param, grad, exp_avg, exp_avg_sq, step)
    }

    /// One SGD step of one parameter, with an optional momentum buffer (PyTorch:
    /// `torch.optim.SGD`, see [`SgdStep`]).
    fn sgd_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        momentum_buffer: Option<&mut Tensor<Self>>,
        step: &SgdStep,
    ) -> Result<()> {
        update::sgd(param, grad, momentum_buffer, step)
    }

    /// `target = momentum * target + (1 - momentum) * source`: a teacher / target network's
    /// exponential moving average (DINO: `param_k.data.mul_(m).add_((1 - m) * param_q)`).
    fn ema_update(
        &self,
        target: &mut Tensor<Self>,
        source: &Tensor<Self>,
        momentum: f64,
    ) -> Result<()> {
        update::ema(target, source, momentum)
    }

    // ---------------------------------------------------------------- composite ops
    // Defaults are in `composite.rs`, written with tensor ops; override with fused kernels.

    /// A contiguous buffer of `len` copies of `value`. Default: a host fill and a transfer;
    /// a size over the memory budget ([`crate::memory::check_alloc`]) is an error.
    fn full(&self, len: usize, value: f64, dtype: DType) -> Result<Self::Storage> {
        self.from_host(HostBuffer::try_filled("full", dtype, len, value)?)
    }

    /// Softmax along `axis`, numerically stable (the max is subtracted first).
    fn softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        composite::softmax(x, axis)
    }

    /// Log-softmax along `axis`: `x - max - log(sum(exp(x - max)))`.
    fn log_softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        composite::log_softmax(x, axis)
    }

    /// GELU, the exact (erf) form: `x/2 * (1 + erf(x/sqrt(2)))`.
    fn gelu(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        composite::gelu(x)
    }

    /// The gradient of [`Backend::gelu`]: `grad * (Phi(x) + x * phi(x))`. `x` and `grad` have
    /// the same shape and float dtype (checked by the front end).
    fn gelu_backward(&self, x: &Tensor<Self>, grad: &Tensor<Self>) -> Result<Tensor<Self>> {
        composite::gelu_backward(x, grad)
    }

    /// GELU, the tanh approximation: `x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))`.
    fn gelu_tanh(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        composite::gelu_tanh(x)
    }

    /// The gradient of [`Backend::gelu_tanh`]. `x` and `grad` have the same shape and float
    /// dtype (checked by the front end).
    fn gelu_tanh_backward(&self, x: &Tensor<Self>, grad: &Tensor<Self>) -> Result<Tensor<Self>> {
        composite::gelu_tanh_backward(x, grad)
    }

    /// The gradient of softmax from its output `y`: `y * (grad - sum(grad * y))` along `axis`.
    fn softmax_backward(
        &self,
        y: &Tensor<Self>,
        grad: &Tensor<Self>,
        axis: usize,
    ) -> Result<Tensor<Self>> {
        composite::softmax_backward(y, grad, axis)
    }

    /// The gradient of log-softmax from its output `y`: `grad - exp(y) * sum(grad)`.
    fn log_softmax_backward(
        &self,
        y: &Tensor<Self>,
        grad: &Tensor<Self>,
        axis: usize,
    ) -> Result<Tensor<Self>> {
        composite::log_softmax_backward(y, grad, axis)
    }

    /// The gradient of [`Backend::layer_norm`] with respect to `x`, from the saved `mean` and
    /// `rstd` (normalized dims kept as size 1) and the weight (if any):
    /// `rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂))` with `ĝ = grad * weight`.
    fn layer_norm_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        grad: &Tensor<Self>,
        normalized_rank: usize,
    ) -> Result<Tensor<Self>> {
        composite::layer_norm_backward(x, mean, rstd, weight, grad, normalized_rank)
    }

    /// The gradients of layer norm's weight and bias from the saved `mean` and `rstd`:
    /// `Σ grad * x̂` and `Σ grad` over the leading (not normalized) dims, shaped as the
    /// normalized dims; each only where `needs` (weight, bias) asks for it.
    fn layer_norm_param_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        grad: &Tensor<Self>,
        normalized_rank: usize,
        needs: (bool, bool),
    ) -> Result<NormParamGrads<Self>> {
        composite::layer_norm_param_backward(x, mean, rstd, grad, normalized_rank, needs)
    }

    /// All of layer norm's gradients in one call (PyTorch: `native_layer_norm_backward` with
    /// its three-element output mask): the input's ([`Backend::layer_norm_backward`]) if
    /// `needs.0`, and the weight's and the bias's ([`Backend::layer_norm_param_backward`]) if
    /// `needs.1` / `needs.2`. The default makes the two calls; a backend overrides it to read
    /// `x` and `grad` once for all three.
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_grads(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        grad: &Tensor<Self>,
        normalized_rank: usize,
        needs: (bool, bool, bool),
    ) -> Result<crate::LayerNormGrads<Self>> {
        composite::layer_norm_grads(x, mean, rstd, weight, grad, normalized_rank, needs)
    }

    /// Layer norm over the last `weight.rank()` dims (biased variance, `eps` inside the sqrt).
    /// Returns `(y, mean, rstd)`; mean and rstd have the normalized dims kept as size 1, which
    /// is what the backward pass needs.
    fn layer_norm(
        &self,
        x: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
        normalized_rank: usize,
        eps: f64,
    ) -> Result<(Tensor<Self>, Tensor<Self>, Tensor<Self>)> {
        composite::layer_norm(x, weight, bias, normalized_rank, eps)
    }

    /// Batch normalization of `[n, c, ..]` over every axis but 1, with the given per-channel
    /// mean and inverse standard deviation: `(x - mean) * rstd * weight + bias`.
    fn batch_norm_apply(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
    ) -> Result<Tensor<Self>> {
        composite::batch_norm_apply(x, mean, rstd, weight, bias)
    }

    /// `a @ b + bias` for `a: [.., m, k]`, `b: [.., k, n]`, `bias: [n]`, already checked by
    /// [`Tensor::matmul_bias`] (PyTorch: `addmm`). The default is the product and then the
    /// broadcast add; a backend that adds the bias inside its GEMM must give the same values
    /// (the CPU's adds it to each finished tile of C, bit-identical to the default).
    fn matmul_bias(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        crate::ops::matmul::bias::matmul_bias_composite(a, b, bias)
    }

    /// `(a @ b, a.sum(&[1], false))` for 2-D `a: [m, k]`, `b: [k, n]`, already checked by
    /// [`Tensor::matmul_row_sums`]: a linear layer's weight and bias gradients with `a = dYᵀ`
    /// (cuBLASLt: the `BGRADA` epilogue). The default is the product and then the sums of
    /// `aᵀ`'s columns; the CPU's sums `dYᵀ` while its GEMM packs it, with the same bits.
    fn matmul_row_sums(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        crate::ops::matmul::row_sums::matmul_row_sums_composite(a, b)
    }

    /// The sum of the squares of all of `x`'s elements, rank 0 in `x`'s dtype, `x` already
    /// checked to be a float by [`Tensor::sum_of_squares`] (gradient clipping's norms). The
    /// default squares and then sums; the CPU squares as it sums, with the same bits.
    fn sum_of_squares(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        crate::ops::reduce::sum_of_squares::sum_of_squares_composite(x)
    }

    /// Per-channel mean and biased variance of a training batch norm's input `[n, c, ..]`,
    /// over every axis but 1, each `[c]` (PyTorch: `batch_norm_stats`).
    fn batch_norm_stats(&self, x: &Tensor<Self>) -> Result<(Tensor<Self>, Tensor<Self>)> {
        composite::batch_norm_stats(x)
    }

    /// The gradients `[dx, dweight, dbias]` of training-mode batch norm from the saved `[c]`
    /// `mean` and `rstd`, computing those that `needs` asks for (PyTorch:
    /// `native_batch_norm_backward` with its output mask); see
    /// [`composite::batch_norm_backward`] for the formulas.
    fn batch_norm_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        grad: &Tensor<Self>,
        needs: BatchNormNeeds,
    ) -> Result<BatchNormGrads<Self>> {
        composite::batch_norm_backward(x, mean, rstd, weight, grad, needs)
    }

    /// 2-D convolution, `x: [n, c, h, w]`, `w: [oc, c/groups, kh, kw]` → `[n, oc, oh, ow]`
    /// (no bias; cross-correlation, as in PyTorch). Default: im2col + batched GEMM per group.
    fn conv2d(&self, x: &Tensor<Self>, w: &Tensor<Self>, p: &Conv2dParams) -> Result<Tensor<Self>> {
        composite::conv2d(x, w, p)
    }

    /// Gradient of [`Backend::conv2d`] with respect to its input, given the output gradient.
    fn conv2d_backward_input(
        &self,
        grad: &Tensor<Self>,
        w: &Tensor<Self>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Self>> {
        composite::conv2d_backward_input(grad, w, p)
    }

    /// Gradient of [`Backend::conv2d`] with respect to its weight, given the output gradient.
    fn conv2d_backward_weight(
        &self,
        x: &Tensor<Self>,
        grad: &Tensor<Self>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Self>> {
        composite::conv2d_backward_weight(x, grad, p)
    }
}
