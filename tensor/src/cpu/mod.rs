//! The CPU reference backend. Its storage is a [`HostBuffer`]; the kernels live next to each
//! op's front end in `ops/<op>/cpu.rs`, and this file only routes the [`Backend`] methods to
//! them.

mod checks;
pub mod parallel;
pub(crate) mod strided;

use crate::backend::{
    Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, PoolParams, ReduceOp, ResizeParams,
    UnaryOp,
};
use crate::dtype::DType;
use crate::layout::Layout;
use crate::ops;
use crate::{HostBuffer, Result, Tensor};

/// The CPU backend (PyTorch: `device="cpu"`). A unit value: every handle is the same device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpu;

impl BackendStorage for HostBuffer {
    fn dtype(&self) -> DType {
        HostBuffer::dtype(self)
    }
    fn len(&self) -> usize {
        HostBuffer::len(self)
    }
}

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
    type Storage = HostBuffer;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn from_host(&self, data: HostBuffer) -> Result<HostBuffer> {
        Ok(data)
    }

    fn to_host(&self, storage: &HostBuffer, layout: &Layout) -> Result<HostBuffer> {
        checks::input("to_host", storage, layout, storage.dtype())?;
        Ok(strided::gather_view(storage, layout))
    }

    fn copy_into(
        &self,
        src: &HostBuffer,
        src_layout: &Layout,
        dst: &mut HostBuffer,
        dst_layout: &Layout,
    ) -> Result<()> {
        checks::copy_into(src, src_layout, dst, dst_layout)?;
        strided::copy_into(src, src_layout, dst, dst_layout)
    }

    fn cast(&self, storage: &HostBuffer, layout: &Layout, dtype: DType) -> Result<HostBuffer> {
        checks::input("cast", storage, layout, storage.dtype())?;
        checks::output("cast", layout.shape(), dtype)?;
        let view = strided::gather_view(storage, layout);
        Ok(if view.dtype() == dtype {
            view
        } else {
            view.cast(dtype)
        })
    }

    fn unary(&self, op: UnaryOp, x: &HostBuffer, layout: &Layout) -> Result<HostBuffer> {
        checks::input("unary", x, layout, x.dtype())?;
        ops::unary::cpu::unary(op, x, layout)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &HostBuffer,
        al: &Layout,
        b: &HostBuffer,
        bl: &Layout,
    ) -> Result<HostBuffer> {
        checks::same_shapes("binary", &[(a, al), (b, bl)], a.dtype())?;
        ops::binary::cpu::binary(op, a, al, b, bl)
    }

    fn compare(
        &self,
        op: CmpOp,
        a: &HostBuffer,
        al: &Layout,
        b: &HostBuffer,
        bl: &Layout,
    ) -> Result<HostBuffer> {
        checks::same_shapes("compare", &[(a, al), (b, bl)], DType::U8)?;
        ops::binary::cpu::compare(op, a, al, b, bl)
    }

    fn where_cond(
        &self,
        c: &HostBuffer,
        cl: &Layout,
        a: &HostBuffer,
        al: &Layout,
        b: &HostBuffer,
        bl: &Layout,
    ) -> Result<HostBuffer> {
        checks::same_shapes("where", &[(c, cl), (a, al), (b, bl)], a.dtype())?;
        ops::binary::cpu::where_cond(c, cl, a, al, b, bl)
    }

    fn reduce(
        &self,
        op: ReduceOp,
        x: &HostBuffer,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<HostBuffer> {
        checks::reduce(op, x, layout, axes)?;
        ops::reduce::cpu::reduce(op, x, layout, axes)
    }

    fn matmul(
        &self,
        a: &HostBuffer,
        al: &Layout,
        b: &HostBuffer,
        bl: &Layout,
    ) -> Result<HostBuffer> {
        let (al, bl) = &checks::matmul(a, al, b, bl)?;
        ops::matmul::cpu::matmul(a, al, b, bl)
    }

    fn index_select(
        &self,
        x: &HostBuffer,
        l: &Layout,
        axis: usize,
        idx: &HostBuffer,
        il: &Layout,
    ) -> Result<HostBuffer> {
        checks::index_select(x, l, axis, idx, il)?;
        ops::index::cpu::index_select(x, l, axis, idx, il)
    }

    fn gather(
        &self,
        x: &HostBuffer,
        l: &Layout,
        axis: usize,
        idx: &HostBuffer,
        il: &Layout,
    ) -> Result<HostBuffer> {
        checks::gather(x, l, idx, il)?;
        ops::index::cpu::gather(x, l, axis, idx, il)
    }

    fn scatter_add(
        &self,
        dst: &mut HostBuffer,
        dst_shape: &[usize],
        axis: usize,
        idx: &HostBuffer,
        il: &Layout,
        src: &HostBuffer,
        sl: &Layout,
    ) -> Result<()> {
        checks::scatter_add(dst, dst_shape, idx, il, src, sl)?;
        ops::index::cpu::scatter_add(dst, dst_shape, axis, idx, il, src, sl)
    }

    fn im2col(&self, x: &HostBuffer, l: &Layout, p: &Conv2dParams) -> Result<HostBuffer> {
        checks::im2col(x, l, p)?;
        ops::conv::cpu::im2col(x, l, p)
    }

    fn col2im(&self, cols: &HostBuffer, l: &Layout, p: &Conv2dParams) -> Result<HostBuffer> {
        checks::col2im(cols, l, p)?;
        ops::conv::cpu::col2im(cols, l, p)
    }

    fn max_pool2d(
        &self,
        x: &HostBuffer,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<(HostBuffer, HostBuffer)> {
        checks::pool("max_pool2d", x, l, p, false)?;
        ops::pool::cpu::max_pool2d(x, l, p)
    }

    fn avg_pool2d(&self, x: &HostBuffer, l: &Layout, p: &PoolParams) -> Result<HostBuffer> {
        checks::pool("avg_pool2d", x, l, p, false)?;
        ops::pool::cpu::avg_pool2d(x, l, p)
    }

    fn avg_pool2d_backward(
        &self,
        g: &HostBuffer,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<HostBuffer> {
        checks::pool("avg_pool2d_backward", g, l, p, true)?;
        ops::pool::cpu::avg_pool2d_backward(g, l, p)
    }

    fn adaptive_avg_pool2d(
        &self,
        x: &HostBuffer,
        l: &Layout,
        out_hw: [usize; 2],
    ) -> Result<HostBuffer> {
        checks::adaptive("adaptive_avg_pool2d", x, l, out_hw)?;
        ops::pool::cpu::adaptive_avg_pool2d(x, l, out_hw)
    }

    fn adaptive_avg_pool2d_backward(
        &self,
        g: &HostBuffer,
        l: &Layout,
        in_hw: [usize; 2],
    ) -> Result<HostBuffer> {
        checks::adaptive("adaptive_avg_pool2d_backward", g, l, in_hw)?;
        ops::pool::cpu::adaptive_avg_pool2d_backward(g, l, in_hw)
    }

    fn upsample_bicubic2d(
        &self,
        x: &HostBuffer,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<HostBuffer> {
        checks::resize("upsample_bicubic2d", x, l, p, false)?;
        ops::interpolate::cpu::upsample_bicubic2d(x, l, p)
    }

    fn upsample_bicubic2d_backward(
        &self,
        g: &HostBuffer,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<HostBuffer> {
        checks::resize("upsample_bicubic2d_backward", g, l, p, true)?;
        ops::interpolate::cpu::upsample_bicubic2d_backward(g, l, p)
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

    fn gelu(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        checks::fused("gelu", x.shape(), x.dtype())?;
        match ops::unary::cpu::gelu(x.storage(), x.layout()) {
            Some(s) => Tensor::from_host(s, x.shape(), self),
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
            Some(s) => Tensor::from_host(s, x.shape(), self),
            None => crate::backend::composite::gelu_backward(x, grad),
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
}
