//! The CPU reference backend. Its storage is a [`HostBuffer`]; the kernels live next to each
//! op's front end in `ops/<op>/cpu.rs`, and this file only routes the [`Backend`] methods to
//! them.

pub(crate) mod checks;
pub mod gemm;
pub mod parallel;
pub mod pool;
pub(crate) mod simd;
mod storage;
pub(crate) mod strided;
mod transpose;
#[cfg(feature = "std")]
mod workers;

pub use storage::CpuStorage;

use crate::backend::{
    AdamWStep, Backend, BinaryOp, CmpOp, Conv2dParams, PoolParams, ReduceOp, ResizeParams, UnaryOp,
};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops;
use crate::{HostBuffer, Result, Tensor};

/// A kernel's output buffer as a contiguous CPU tensor (not an upload: it is already the
/// backend's memory).
pub(crate) fn kernel_output(buf: HostBuffer, shape: &[usize]) -> Result<Tensor<Cpu>> {
    if buf.len() != crate::shape::numel(shape) {
        return Err(crate::shape_err!(
            "cpu kernel",
            "{} elements for shape {shape:?}",
            buf.len()
        ));
    }
    Ok(Tensor::from_storage(CpuStorage::from(buf), shape, &Cpu))
}

/// [`HostBuffer::cast`] into a buffer from the cache (same conversions).
fn cast_pooled(src: &HostBuffer, dtype: DType) -> Result<HostBuffer> {
    fn conv<S: crate::Element, D: crate::HostElement>(v: &[S]) -> Result<HostBuffer> {
        let mut out = pool::take::<D>("cast", v.len())?;
        out.extend(v.iter().map(|&x| D::from_f64(x.to_f64())));
        Ok(D::into_buffer(out))
    }
    crate::with_buffer!(src, v => match dtype {
        DType::F16 => conv::<_, half::f16>(v),
        DType::BF16 => conv::<_, half::bf16>(v),
        DType::F32 => conv::<_, f32>(v),
        DType::F64 => conv::<_, f64>(v),
        DType::I64 => conv::<_, i64>(v),
        DType::U8 => conv::<_, u8>(v),
    })
}

/// The CPU backend (PyTorch: `device="cpu"`). A unit value: every handle is the same device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu;

/// Calls `$body` with `$v` bound to the typed slice of a float [`HostBuffer`]; integer
/// buffers make the enclosing function return a dtype error naming `$op`.
#[macro_export]
#[doc(hidden)]
macro_rules! float_dispatch {
    ($op:expr, $buf:expr, $v:ident => $body:expr) => {
        match $buf {
            $crate::HostBuffer::F16($v) => $body,
            $crate::HostBuffer::BF16($v) => $body,
            $crate::HostBuffer::F32($v) => $body,
            $crate::HostBuffer::F64($v) => $body,
            other => {
                return Err($crate::Error::DType {
                    op: $op,
                    msg: $crate::__format!(
                        "the CPU kernel needs a float tensor, got {}",
                        other.dtype()
                    ),
                })
            }
        }
    };
}

impl Backend for Cpu {
    type Storage = CpuStorage;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn from_host(&self, data: HostBuffer) -> Result<CpuStorage> {
        pool::count_transfer(true);
        Ok(CpuStorage::from(data))
    }

    fn full(&self, len: usize, value: f64, dtype: DType) -> Result<CpuStorage> {
        crate::memory::check_alloc("full", len, dtype)?;
        // Fallible all the way down: a size within the budget that the system still refuses
        // is an error too, not the allocator's abort.
        fn fill<T: crate::HostElement>(len: usize, value: f64) -> Result<HostBuffer> {
            Ok(T::into_buffer(pool::filled_parallel(
                "full",
                len,
                T::from_f64(value),
            )?))
        }
        Ok(CpuStorage::from(match dtype {
            DType::F16 => fill::<half::f16>(len, value)?,
            DType::BF16 => fill::<half::bf16>(len, value)?,
            DType::F32 => fill::<f32>(len, value)?,
            DType::F64 => fill::<f64>(len, value)?,
            DType::I64 => fill::<i64>(len, value)?,
            DType::U8 => fill::<u8>(len, value)?,
        }))
    }

    fn empty_cache(&self) {
        pool::empty_cache();
    }

    fn alloc_uninit(&self, len: usize, dtype: DType) -> Result<CpuStorage> {
        // Safe Rust has no uninitialized floats: a cached block is zero-filled (a memset,
        // no page faults once the block has been used), which is what `full` does.
        self.full(len, 0.0, dtype)
    }

    fn to_host(&self, storage: &CpuStorage, layout: &Layout) -> Result<HostBuffer> {
        pool::count_transfer(false);
        checks::input("to_host", storage, layout, storage.dtype())?;
        Ok(strided::gather_view(storage, layout))
    }

    fn copy_into(
        &self,
        src: &CpuStorage,
        src_layout: &Layout,
        dst: &mut CpuStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        checks::copy_into(src, src_layout, dst, dst_layout)?;
        strided::copy_into(src, src_layout, dst, dst_layout)
    }

    fn cast(&self, storage: &CpuStorage, layout: &Layout, dtype: DType) -> Result<CpuStorage> {
        checks::input("cast", storage, layout, storage.dtype())?;
        checks::output("cast", layout.shape(), dtype)?;
        let view = strided::gather_view(storage, layout);
        Ok(CpuStorage::from(if view.dtype() == dtype {
            view
        } else {
            let cast = cast_pooled(&view, dtype)?;
            pool::give_buffer(view);
            cast
        }))
    }

    fn unary(&self, op: UnaryOp, x: &CpuStorage, layout: &Layout) -> Result<CpuStorage> {
        checks::input("unary", x, layout, x.dtype())?;
        ops::unary::cpu::unary(op, x, layout).map(CpuStorage::from)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        checks::same_shapes("binary", &[(a, al), (b, bl)], a.dtype())?;
        ops::binary::cpu::binary(op, a, al, b, bl).map(CpuStorage::from)
    }

    fn compare(
        &self,
        op: CmpOp,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        checks::same_shapes("compare", &[(a, al), (b, bl)], DType::U8)?;
        ops::binary::cpu::compare(op, a, al, b, bl).map(CpuStorage::from)
    }

    fn where_cond(
        &self,
        c: &CpuStorage,
        cl: &Layout,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        checks::same_shapes("where", &[(c, cl), (a, al), (b, bl)], a.dtype())?;
        ops::binary::cpu::where_cond(c, cl, a, al, b, bl).map(CpuStorage::from)
    }

    fn reduce(
        &self,
        op: ReduceOp,
        x: &CpuStorage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<CpuStorage> {
        checks::reduce(op, x, layout, axes)?;
        ops::reduce::cpu::reduce(op, x, layout, axes).map(CpuStorage::from)
    }

    fn matmul(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        let (al, bl) = &checks::matmul(a, al, b, bl)?;
        ops::matmul::cpu::matmul(a, al, b, bl).map(CpuStorage::from)
    }

    fn index_select(
        &self,
        x: &CpuStorage,
        l: &Layout,
        axis: usize,
        idx: &CpuStorage,
        il: &Layout,
    ) -> Result<CpuStorage> {
        checks::index_select(x, l, axis, idx, il)?;
        ops::index::cpu::index_select(x, l, axis, idx, il).map(CpuStorage::from)
    }

    fn gather(
        &self,
        x: &CpuStorage,
        l: &Layout,
        axis: usize,
        idx: &CpuStorage,
        il: &Layout,
    ) -> Result<CpuStorage> {
        checks::gather(x, l, idx, il)?;
        ops::index::cpu::gather(x, l, axis, idx, il).map(CpuStorage::from)
    }

    fn scatter_add(
        &self,
        dst: &mut CpuStorage,
        dst_shape: &[usize],
        axis: usize,
        idx: &CpuStorage,
        il: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> Result<()> {
        checks::scatter_add(dst, dst_shape, idx, il, src, sl)?;
        ops::index::cpu::scatter_add(dst, dst_shape, axis, idx, il, src, sl)
    }

    fn im2col(&self, x: &CpuStorage, l: &Layout, p: &Conv2dParams) -> Result<CpuStorage> {
        checks::im2col(x, l, p)?;
        ops::conv::cpu::im2col(x, l, p).map(CpuStorage::from)
    }

    fn col2im(&self, cols: &CpuStorage, l: &Layout, p: &Conv2dParams) -> Result<CpuStorage> {
        checks::col2im(cols, l, p)?;
        ops::conv::cpu::col2im(cols, l, p).map(CpuStorage::from)
    }

    // Convolutions as one GEMM over the batch (`ops/conv/rows.rs`); groups and half
    // precision keep the im2col composite.
    fn conv2d(&self, x: &Tensor<Cpu>, w: &Tensor<Cpu>, p: &Conv2dParams) -> Result<Tensor<Cpu>> {
        match ops::conv::rows::applies(x, p) {
            true => ops::conv::rows::conv2d(x, w, p),
            false => crate::backend::composite::conv2d(x, w, p),
        }
    }

    fn conv2d_backward_input(
        &self,
        grad: &Tensor<Cpu>,
        w: &Tensor<Cpu>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Cpu>> {
        match ops::conv::rows::applies(grad, p) {
            true => ops::conv::rows::conv2d_backward_input(grad, w, p),
            false => crate::backend::composite::conv2d_backward_input(grad, w, p),
        }
    }

    fn conv2d_backward_weight(
        &self,
        x: &Tensor<Cpu>,
        grad: &Tensor<Cpu>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Cpu>> {
        match ops::conv::rows::applies(x, p) {
            true => ops::conv::rows::conv2d_backward_weight(x, grad, p),
            false => crate::backend::composite::conv2d_backward_weight(x, grad, p),
        }
    }

    fn max_pool2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<(CpuStorage, CpuStorage)> {
        checks::pool("max_pool2d", x, l, p, false)?;
        ops::pool::cpu::max_pool2d(x, l, p).map(|(v, i)| (CpuStorage::from(v), CpuStorage::from(i)))
    }

    fn avg_pool2d(&self, x: &CpuStorage, l: &Layout, p: &PoolParams) -> Result<CpuStorage> {
        checks::pool("avg_pool2d", x, l, p, false)?;
        ops::pool::cpu::avg_pool2d(x, l, p).map(CpuStorage::from)
    }

    fn avg_pool2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<CpuStorage> {
        checks::pool("avg_pool2d_backward", g, l, p, true)?;
        ops::pool::cpu::avg_pool2d_backward(g, l, p).map(CpuStorage::from)
    }

    fn adaptive_avg_pool2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        out_hw: [usize; 2],
    ) -> Result<CpuStorage> {
        checks::adaptive("adaptive_avg_pool2d", x, l, out_hw)?;
        ops::pool::cpu::adaptive_avg_pool2d(x, l, out_hw).map(CpuStorage::from)
    }

    fn adaptive_avg_pool2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        in_hw: [usize; 2],
    ) -> Result<CpuStorage> {
        checks::adaptive("adaptive_avg_pool2d_backward", g, l, in_hw)?;
        ops::pool::cpu::adaptive_avg_pool2d_backward(g, l, in_hw).map(CpuStorage::from)
    }

    fn upsample_bicubic2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CpuStorage> {
        checks::resize("upsample_bicubic2d", x, l, p, false)?;
        ops::interpolate::cpu::upsample_bicubic2d(x, l, p).map(CpuStorage::from)
    }

    fn upsample_bicubic2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CpuStorage> {
        checks::resize("upsample_bicubic2d_backward", g, l, p, true)?;
        ops::interpolate::cpu::upsample_bicubic2d_backward(g, l, p).map(CpuStorage::from)
    }

    // ------------------------------------------------------------ in place and fused updates

    fn unary_inplace(&self, op: UnaryOp, x: &mut CpuStorage, l: &Layout) -> Result<()> {
        if ops::inplace::cpu::unary_inplace(op, x, l).is_some() {
            return Ok(());
        }
        let out = self.unary(op, x, l)?;
        self.copy_into(&out, &Layout::contiguous(l.shape()), x, l)
    }

    fn binary_inplace(
        &self,
        op: BinaryOp,
        a: &mut CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<()> {
        if ops::inplace::cpu::binary_inplace(op, a, al, b, bl).is_some() {
            return Ok(());
        }
        let out = self.binary(op, a, al, b, bl)?;
        self.copy_into(&out, &Layout::contiguous(al.shape()), a, al)
    }

    fn adamw_update(
        &self,
        p: &mut Tensor<Self>,
        g: &Tensor<Self>,
        m: &mut Tensor<Self>,
        v: &mut Tensor<Self>,
        step: &AdamWStep,
    ) -> Result<()> {
        let fused = {
            let (ps, pl) = p.storage_mut()?;
            let (ms, ml) = m.storage_mut()?;
            let (vs, vl) = v.storage_mut()?;
            ops::inplace::cpu::adamw(
                (ps, pl),
                (g.storage(), g.layout()),
                (ms, ml),
                (vs, vl),
                step,
            )
        };
        match fused {
            Some(()) => Ok(()),
            None => crate::backend::update::adamw(p, g, m, v, step),
        }
    }

    fn ema_update(&self, t: &mut Tensor<Self>, s: &Tensor<Self>, momentum: f64) -> Result<()> {
        let fused = {
            let (ts, tl) = t.storage_mut()?;
            ops::inplace::cpu::ema((ts, tl), (s.storage(), s.layout()), momentum)
        };
        match fused {
            Some(()) => Ok(()),
            None => crate::backend::update::ema(t, s, momentum),
        }
    }

    // ------------------------------------------------------------ fused composite overrides

    fn softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        checks::softmax("softmax", x.shape(), axis, x.dtype())?;
        ops::softmax::cpu::softmax(x, axis)
    }

    fn log_softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        checks::softmax("log_softmax", x.shape(), axis, x.dtype())?;
        ops::softmax::cpu::log_softmax(x, axis)
    }

    fn softmax_backward(
        &self,
        y: &Tensor<Self>,
        grad: &Tensor<Self>,
        axis: usize,
    ) -> Result<Tensor<Self>> {
        ops::softmax::cpu_softmax_backward(y, grad, axis)
    }

    fn gelu(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        checks::fused("gelu", x.shape(), x.dtype())?;
        match ops::unary::cpu::gelu(x.storage(), x.layout()) {
            Some(s) => kernel_output(s, x.shape()),
            None => crate::backend::composite::gelu(x),
        }
    }

    fn gelu_backward(&self, x: &Tensor<Self>, grad: &Tensor<Self>) -> Result<Tensor<Self>> {
        let (xs, gs) = (&**x.storage(), &**grad.storage());
        checks::same_shapes(
            "gelu_backward",
            &[(xs, x.layout()), (gs, grad.layout())],
            x.dtype(),
        )?;
        match ops::unary::cpu::gelu_backward(x.storage(), x.layout(), grad.storage(), grad.layout())
        {
            Some(s) => kernel_output(s, x.shape()),
            None => crate::backend::composite::gelu_backward(x, grad),
        }
    }

    fn gelu_tanh(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        checks::fused("gelu_tanh", x.shape(), x.dtype())?;
        match ops::unary::cpu::gelu_tanh(x.storage(), x.layout()) {
            Some(s) => kernel_output(s, x.shape()),
            None => crate::backend::composite::gelu_tanh(x),
        }
    }

    fn gelu_tanh_backward(&self, x: &Tensor<Self>, grad: &Tensor<Self>) -> Result<Tensor<Self>> {
        let (xs, gs) = (&**x.storage(), &**grad.storage());
        checks::same_shapes(
            "gelu_tanh_backward",
            &[(xs, x.layout()), (gs, grad.layout())],
            x.dtype(),
        )?;
        match ops::unary::cpu::gelu_tanh_backward(
            x.storage(),
            x.layout(),
            grad.storage(),
            grad.layout(),
        ) {
            Some(s) => kernel_output(s, x.shape()),
            None => crate::backend::composite::gelu_tanh_backward(x, grad),
        }
    }

    fn layer_norm(
        &self,
        x: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
        normalized_rank: usize,
        eps: f64,
    ) -> Result<(Tensor<Self>, Tensor<Self>, Tensor<Self>)> {
        let params = [weight.map(|w| w.shape()), bias.map(|b| b.shape())];
        checks::layer_norm(x.shape(), x.dtype(), params, normalized_rank)?;
        ops::norm::cpu::layer_norm(x, weight, bias, normalized_rank, eps)
    }

    fn matmul_bias(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
        bias: &Tensor<Self>,
    ) -> Result<Tensor<Self>> {
        ops::matmul::bias::matmul_bias_cpu(a, b, bias)
    }

    fn matmul_row_sums(
        &self,
        a: &Tensor<Self>,
        b: &Tensor<Self>,
    ) -> Result<(Tensor<Self>, Tensor<Self>)> {
        ops::matmul::row_sums::matmul_row_sums_cpu(a, b)
    }

    fn sum_of_squares(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        ops::reduce::sum_of_squares::sum_of_squares_cpu(x)
    }

    fn batch_norm_stats(&self, x: &Tensor<Self>) -> Result<(Tensor<Self>, Tensor<Self>)> {
        ops::norm::batch_stats_cpu::batch_norm_stats(x)
    }

    fn batch_norm_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        grad: &Tensor<Self>,
        needs: crate::BatchNormNeeds,
    ) -> Result<crate::BatchNormGrads<Self>> {
        ops::norm::batch_stats_cpu::batch_norm_backward(x, mean, rstd, weight, grad, needs)
    }

    fn batch_norm_apply(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
    ) -> Result<Tensor<Self>> {
        ops::norm::batch_cpu::batch_norm_apply(x, mean, rstd, weight, bias)
    }

    fn layer_norm_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        grad: &Tensor<Self>,
        normalized_rank: usize,
    ) -> Result<Tensor<Self>> {
        ops::norm::cpu_backward::layer_norm_backward(x, mean, rstd, weight, grad, normalized_rank)
    }

    fn layer_norm_param_backward(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        grad: &Tensor<Self>,
        normalized_rank: usize,
        needs: (bool, bool),
    ) -> Result<crate::NormParamGrads<Self>> {
        let k = normalized_rank;
        ops::norm::cpu_param_backward::layer_norm_param_backward(x, mean, rstd, grad, k, needs)
    }

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
        let k = normalized_rank;
        ops::norm::cpu_grads::layer_norm_grads(x, mean, rstd, weight, grad, k, needs)
    }
}
