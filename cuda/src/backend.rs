//! `impl Backend for Cuda`: every method delegates to the op file of its family in `ops/`.

use crate::ops;
use crate::storage::CudaStorage;
use crate::Cuda;
use tessera_tensor::{
    AdamWStep, Backend, BinaryOp, CmpOp, Conv2dParams, DType, HostBuffer, Layout, PoolParams,
    ReduceOp, ResizeParams, Result, SgdStep, Tensor, UnaryOp,
};

impl Backend for Cuda {
    type Storage = CudaStorage;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn device_name(&self) -> String {
        match self.kind() {
            crate::DeviceKind::Gpu(n) => format!("cuda:{n}"),
            crate::DeviceKind::Sim => String::from("cuda-sim"),
        }
    }

    fn synchronize(&self) -> Result<()> {
        self.inner.driver.synchronize()
    }

    fn empty_cache(&self) {
        self.inner.allocator().empty_cache()
    }

    fn alloc_uninit(&self, len: usize, dtype: DType) -> Result<CudaStorage> {
        CudaStorage::uninit(self, len, dtype)
    }

    fn full(&self, len: usize, value: f64, dtype: DType) -> Result<CudaStorage> {
        ops::copy::full(self, len, value, dtype)
    }

    fn from_host(&self, data: HostBuffer) -> Result<CudaStorage> {
        ops::copy::from_host(self, data)
    }

    fn to_host(&self, storage: &CudaStorage, layout: &Layout) -> Result<HostBuffer> {
        ops::copy::to_host(self, storage, layout)
    }

    fn copy_into(
        &self,
        src: &CudaStorage,
        src_layout: &Layout,
        dst: &mut CudaStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        ops::copy::copy_into(self, src, src_layout, dst, dst_layout)
    }

    fn cast(&self, storage: &CudaStorage, layout: &Layout, dtype: DType) -> Result<CudaStorage> {
        ops::copy::cast(self, storage, layout, dtype)
    }

    fn unary(&self, op: UnaryOp, x: &CudaStorage, layout: &Layout) -> Result<CudaStorage> {
        ops::unary::unary(self, op, x, layout)
    }

    fn unary_inplace(&self, op: UnaryOp, x: &mut CudaStorage, layout: &Layout) -> Result<()> {
        ops::unary::unary_inplace(self, op, x, layout)
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &CudaStorage,
        a_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::binary::binary(self, op, a, a_layout, b, b_layout)
    }

    fn binary_inplace(
        &self,
        op: BinaryOp,
        a: &mut CudaStorage,
        a_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
    ) -> Result<()> {
        ops::binary::binary_inplace(self, op, a, a_layout, b, b_layout)
    }

    fn compare(
        &self,
        op: CmpOp,
        a: &CudaStorage,
        a_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::binary::compare(self, op, a, a_layout, b, b_layout)
    }

    fn where_cond(
        &self,
        cond: &CudaStorage,
        cond_layout: &Layout,
        a: &CudaStorage,
        a_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::binary::where_cond(self, cond, cond_layout, a, a_layout, b, b_layout)
    }

    fn reduce(
        &self,
        op: ReduceOp,
        x: &CudaStorage,
        layout: &Layout,
        axes: &[usize],
    ) -> Result<CudaStorage> {
        ops::reduce::reduce(self, op, x, layout, axes)
    }

    fn matmul(
        &self,
        a: &CudaStorage,
        a_layout: &Layout,
        b: &CudaStorage,
        b_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::matmul::matmul(self, a, a_layout, b, b_layout)
    }

    fn index_select(
        &self,
        x: &CudaStorage,
        layout: &Layout,
        axis: usize,
        index: &CudaStorage,
        index_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::index::index_select(self, x, layout, axis, index, index_layout)
    }

    fn gather(
        &self,
        x: &CudaStorage,
        layout: &Layout,
        axis: usize,
        index: &CudaStorage,
        index_layout: &Layout,
    ) -> Result<CudaStorage> {
        ops::index::gather(self, x, layout, axis, index, index_layout)
    }

    fn scatter_add(
        &self,
        dst: &mut CudaStorage,
        dst_shape: &[usize],
        axis: usize,
        index: &CudaStorage,
        index_layout: &Layout,
        src: &CudaStorage,
        src_layout: &Layout,
    ) -> Result<()> {
        ops::index::scatter_add(
            self,
            dst,
            dst_shape,
            axis,
            index,
            index_layout,
            src,
            src_layout,
        )
    }

    fn im2col(&self, x: &CudaStorage, layout: &Layout, p: &Conv2dParams) -> Result<CudaStorage> {
        ops::conv::im2col(self, x, layout, p)
    }

    fn col2im(&self, cols: &CudaStorage, layout: &Layout, p: &Conv2dParams) -> Result<CudaStorage> {
        ops::conv::col2im(self, cols, layout, p)
    }

    fn max_pool2d(
        &self,
        x: &CudaStorage,
        layout: &Layout,
        p: &PoolParams,
    ) -> Result<(CudaStorage, CudaStorage)> {
        ops::pool::max_pool2d(self, x, layout, p)
    }

    fn avg_pool2d(&self, x: &CudaStorage, layout: &Layout, p: &PoolParams) -> Result<CudaStorage> {
        ops::pool::avg_pool2d(self, x, layout, p)
    }

    fn avg_pool2d_backward(
        &self,
        grad: &CudaStorage,
        layout: &Layout,
        p: &PoolParams,
    ) -> Result<CudaStorage> {
        ops::pool::avg_pool2d_backward(self, grad, layout, p)
    }

    fn adaptive_avg_pool2d(
        &self,
        x: &CudaStorage,
        layout: &Layout,
        out_hw: [usize; 2],
    ) -> Result<CudaStorage> {
        ops::pool::adaptive_avg_pool2d(self, x, layout, out_hw)
    }

    fn adaptive_avg_pool2d_backward(
        &self,
        grad: &CudaStorage,
        layout: &Layout,
        in_hw: [usize; 2],
    ) -> Result<CudaStorage> {
        ops::pool::adaptive_avg_pool2d_backward(self, grad, layout, in_hw)
    }

    fn upsample_bicubic2d(
        &self,
        x: &CudaStorage,
        layout: &Layout,
        p: &ResizeParams,
    ) -> Result<CudaStorage> {
        ops::interpolate::upsample_bicubic2d(self, x, layout, p)
    }

    fn upsample_bicubic2d_backward(
        &self,
        grad: &CudaStorage,
        layout: &Layout,
        p: &ResizeParams,
    ) -> Result<CudaStorage> {
        ops::interpolate::upsample_bicubic2d_backward(self, grad, layout, p)
    }

    fn adamw_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        exp_avg: &mut Tensor<Self>,
        exp_avg_sq: &mut Tensor<Self>,
        step: &AdamWStep,
    ) -> Result<()> {
        ops::update::adamw_update(self, param, grad, exp_avg, exp_avg_sq, step)
    }

    fn sgd_update(
        &self,
        param: &mut Tensor<Self>,
        grad: &Tensor<Self>,
        momentum_buffer: Option<&mut Tensor<Self>>,
        step: &SgdStep,
    ) -> Result<()> {
        ops::update::sgd_update(self, param, grad, momentum_buffer, step)
    }

    fn ema_update(
        &self,
        target: &mut Tensor<Self>,
        source: &Tensor<Self>,
        momentum: f64,
    ) -> Result<()> {
        ops::update::ema_update(self, target, source, momentum)
    }

    fn softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        ops::softmax::softmax(self, x, axis)
    }

    fn log_softmax(&self, x: &Tensor<Self>, axis: usize) -> Result<Tensor<Self>> {
        ops::softmax::log_softmax(self, x, axis)
    }

    fn softmax_backward(
        &self,
        y: &Tensor<Self>,
        grad: &Tensor<Self>,
        axis: usize,
    ) -> Result<Tensor<Self>> {
        ops::softmax::softmax_backward(self, y, grad, axis)
    }

    fn log_softmax_backward(
        &self,
        y: &Tensor<Self>,
        grad: &Tensor<Self>,
        axis: usize,
    ) -> Result<Tensor<Self>> {
        ops::softmax::log_softmax_backward(self, y, grad, axis)
    }

    fn gelu(&self, x: &Tensor<Self>) -> Result<Tensor<Self>> {
        ops::activation::gelu(self, x)
    }

    fn gelu_backward(&self, x: &Tensor<Self>, grad: &Tensor<Self>) -> Result<Tensor<Self>> {
        ops::activation::gelu_backward(self, x, grad)
    }

    fn layer_norm(
        &self,
        x: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
        normalized_rank: usize,
        eps: f64,
    ) -> Result<(Tensor<Self>, Tensor<Self>, Tensor<Self>)> {
        ops::norm::layer_norm(self, x, weight, bias, normalized_rank, eps)
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
        ops::norm::layer_norm_backward(self, x, mean, rstd, weight, grad, normalized_rank)
    }

    fn batch_norm_apply(
        &self,
        x: &Tensor<Self>,
        mean: &Tensor<Self>,
        rstd: &Tensor<Self>,
        weight: Option<&Tensor<Self>>,
        bias: Option<&Tensor<Self>>,
    ) -> Result<Tensor<Self>> {
        ops::norm::batch_norm_apply(self, x, mean, rstd, weight, bias)
    }

    fn conv2d(&self, x: &Tensor<Self>, w: &Tensor<Self>, p: &Conv2dParams) -> Result<Tensor<Self>> {
        ops::conv::conv2d(self, x, w, p)
    }

    fn conv2d_backward_input(
        &self,
        grad: &Tensor<Self>,
        w: &Tensor<Self>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Self>> {
        ops::conv::conv2d_backward_input(self, grad, w, p)
    }

    fn conv2d_backward_weight(
        &self,
        x: &Tensor<Self>,
        grad: &Tensor<Self>,
        p: &Conv2dParams,
    ) -> Result<Tensor<Self>> {
        ops::conv::conv2d_backward_weight(self, x, grad, p)
    }
}
