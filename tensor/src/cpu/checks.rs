//! What each [`Cpu`](super::Cpu) backend method checks before its kernel runs.
//!
//! The kernels index storages with unchecked offset arithmetic (and GEMM with raw pointers),
//! trusting that layouts fit their storages, that shapes agree and that parameters describe
//! the input. The [`Tensor`](crate::Tensor) front end guarantees all of that, but the
//! [`Backend`](crate::Backend) methods are public and callable with any storages and
//! layouts, so each one calls a function here first and gets an `Err` for anything its
//! kernel relies on. Output sizes are also checked against the memory budget
//! ([`crate::memory`]), so a huge broadcast view is an error rather than an abort.

use crate::backend::{Conv2dParams, PoolParams, ResizeParams};
use crate::layout::Layout;
use crate::memory::check_alloc;
use crate::shape::try_numel;
use crate::{DType, Error, HostBuffer, Result};

/// The dtype a float kernel computes in: f16/bf16 are widened to f32 (and buffered so).
fn work(d: DType) -> DType {
    if d.size_in_bytes() < 4 {
        DType::F32
    } else {
        d
    }
}

/// `l` is a valid layout that fits `x`.
pub(crate) fn fits(op: &'static str, x: &HostBuffer, l: &Layout) -> Result<()> {
    l.check_fits(op, x.len())
}

/// An output of `shape` and `dtype` may be allocated.
pub(crate) fn output(op: &'static str, shape: &[usize], dtype: DType) -> Result<()> {
    check_alloc(op, try_numel(op, shape)?, dtype)
}

/// `l` fits `x`, and a contiguous copy of it in `out` may be allocated: unary ops, copies,
/// casts, and the kernels that gather a (possibly huge, broadcast) view before working.
pub(crate) fn input(op: &'static str, x: &HostBuffer, l: &Layout, out: DType) -> Result<()> {
    fits(op, x, l)?;
    output(op, l.shape(), out)
}

/// Elementwise inputs: each fits its storage and all have the first one's shape.
pub(crate) fn same_shapes(
    op: &'static str,
    inputs: &[(&HostBuffer, &Layout)],
    out: DType,
) -> Result<()> {
    let shape = inputs[0].1.shape();
    for &(x, l) in inputs {
        fits(op, x, l)?;
        if l.shape() != shape {
            return Err(crate::shape_err!(
                op,
                "inputs have shapes {shape:?} and {:?}",
                l.shape()
            ));
        }
    }
    output(op, shape, out)
}

/// `[batch.., m, k] x [batch.., k, n]` with identical batch dims. Returns the layouts the
/// kernel should use (the same views, with strides it could misread replaced).
pub(crate) fn matmul(
    a: &HostBuffer,
    al: &Layout,
    b: &HostBuffer,
    bl: &Layout,
) -> Result<(Layout, Layout)> {
    let op = "matmul";
    fits(op, a, al)?;
    fits(op, b, bl)?;
    if work(a.dtype()) != a.dtype() {
        // f16/bf16 operands are gathered and widened to f32 first.
        output(op, al.shape(), DType::F32)?;
        output(op, bl.shape(), DType::F32)?;
    }
    let (sa, sb, r) = (al.shape(), bl.shape(), al.rank());
    if r < 2 || bl.rank() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] {
        return Err(crate::shape_err!(
            op,
            "needs [batch.., m, k] x [batch.., k, n] with equal batch dims, got {sa:?} x {sb:?}"
        ));
    }
    let mut out: crate::shape::Dims = sa[..r - 1].iter().copied().collect();
    out.push(sb[r - 1]);
    output(op, &out, a.dtype())?;
    // matrixmultiply takes isize strides. A fitting layout only has a larger one on a dim of
    // size 1, whose stride is never followed: it becomes 0 rather than a negative isize.
    // An empty view becomes contiguous, because GEMM still offsets its base pointer by the
    // view's (then unconstrained) offset and batch strides.
    let dense = |l: &Layout| {
        if l.numel() == 0 {
            return Layout::contiguous(l.shape());
        }
        let big = |s: usize| s > isize::MAX as usize;
        if !l.strides()[r - 2..].iter().copied().any(big) {
            return l.clone();
        }
        let st: crate::shape::Dims = l
            .strides()
            .iter()
            .map(|&s| if big(s) { 0 } else { s })
            .collect();
        Layout::from_parts(l.shape(), &st, l.offset())
    };
    Ok((dense(al), dense(bl)))
}

/// Axes strictly increasing and in range; max/min/arg* need non-empty reduced dims (the
/// kernel takes the first element of each run).
pub(crate) fn reduce(
    op: crate::ReduceOp,
    x: &HostBuffer,
    l: &Layout,
    axes: &[usize],
) -> Result<()> {
    let name = "reduce";
    input(name, x, l, x.dtype())?; // the kernel gathers the view
    let sorted = axes.windows(2).all(|w| w[0] < w[1]);
    if !sorted || axes.iter().any(|&a| a >= l.rank()) {
        return Err(crate::shape_err!(
            name,
            "axes {axes:?} must be sorted, distinct and below the rank of {:?}",
            l.shape()
        ));
    }
    if op != crate::ReduceOp::Sum && axes.iter().any(|&a| l.shape()[a] == 0) {
        return Err(crate::shape_err!(
            name,
            "{op:?} over an empty dim of {:?}",
            l.shape()
        ));
    }
    let keep: crate::shape::Dims = (0..l.rank())
        .map(|d| if axes.contains(&d) { 1 } else { l.shape()[d] })
        .collect();
    let dtype = match op {
        crate::ReduceOp::ArgMax | crate::ReduceOp::ArgMin => DType::I64,
        _ => x.dtype(),
    };
    output(name, &keep, dtype)
}

/// An I64 index view that fits its storage, and whose values may be read into a vector.
fn index(op: &'static str, idx: &HostBuffer, il: &Layout) -> Result<()> {
    if idx.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            msg: crate::__format!("index must be I64, got {}", idx.dtype()),
        });
    }
    // The kernels read the indices into a Vec<usize> first.
    input(op, idx, il, DType::I64)
}

/// `index_select`: a 1-D index, an axis of `x`, and a sized output. The index values are
/// checked by the kernel itself as it reads them.
pub(crate) fn index_select(
    x: &HostBuffer,
    l: &Layout,
    axis: usize,
    idx: &HostBuffer,
    il: &Layout,
) -> Result<()> {
    let op = "index_select";
    fits(op, x, l)?;
    index(op, idx, il)?;
    if axis >= l.rank() || il.rank() != 1 {
        return Err(crate::shape_err!(
            op,
            "needs a 1-D index and an axis of {:?}, got index {:?} and axis {axis}",
            l.shape(),
            il.shape()
        ));
    }
    let mut out: crate::shape::Dims = l.shape().iter().copied().collect();
    out[axis] = il.shape()[0];
    output(op, &out, x.dtype())
}

/// `gather`: the kernel checks ranks, sizes and index values; this adds the storages.
pub(crate) fn gather(x: &HostBuffer, l: &Layout, idx: &HostBuffer, il: &Layout) -> Result<()> {
    let op = "gather";
    fits(op, x, l)?;
    index(op, idx, il)?;
    output(op, il.shape(), x.dtype())
}

/// `scatter_add`: `dst_shape` is a caller's shape, so it is validated before the kernel
/// builds a contiguous layout of it; the kernel checks ranks, sizes and index values.
pub(crate) fn scatter_add(
    dst: &HostBuffer,
    dst_shape: &[usize],
    idx: &HostBuffer,
    il: &Layout,
    src: &HostBuffer,
    sl: &Layout,
) -> Result<()> {
    let op = "scatter_add";
    Layout::try_contiguous(op, dst_shape)?.check_fits(op, dst.len())?;
    index(op, idx, il)?;
    input(op, src, sl, work(src.dtype()))
}

/// A rank-4 layout `[n, c, h, w]`; returns `n`.
fn nchw(op: &'static str, l: &Layout, c: Option<usize>, hw: [usize; 2]) -> Result<usize> {
    let s = l.shape();
    if s.len() != 4 || c.is_some_and(|c| s[1] != c) || s[2..] != hw {
        return Err(crate::shape_err!(
            op,
            "expected [n, {}, {}, {}], got {s:?}",
            c.map_or_else(|| "c".into(), |c| crate::__format!("{c}")),
            hw[0],
            hw[1]
        ));
    }
    Ok(s[0])
}

/// `im2col`: `[n, c, h, w]` matching the parameters; output `[n, c*kh*kw, oh*ow]`.
pub(crate) fn im2col(x: &HostBuffer, l: &Layout, p: &Conv2dParams) -> Result<()> {
    let op = "im2col";
    input(op, x, l, x.dtype())?;
    let n = nchw(op, l, Some(p.in_channels), p.in_hw)?;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw]) = (p.in_channels, p.kernel);
    output(op, &[n, c, kh, kw, oh, ow], x.dtype())
}

/// `col2im`: `[n, c*kh*kw, oh*ow]` matching the parameters; output `[n, c, h, w]`.
pub(crate) fn col2im(cols: &HostBuffer, l: &Layout, p: &Conv2dParams) -> Result<()> {
    let op = "col2im";
    input(op, cols, l, work(cols.dtype()))?;
    let [oh, ow] = p.out_hw()?;
    let (c, [kh, kw], [h, w]) = (p.in_channels, p.kernel, p.in_hw);
    let want = [try_numel(op, &[c, kh, kw])?, try_numel(op, &[oh, ow])?];
    let s = l.shape();
    if s.len() != 3 || s[1..] != want {
        return Err(crate::shape_err!(
            op,
            "expected [n, {}, {}] for {p:?}, got {s:?}",
            want[0],
            want[1]
        ));
    }
    // f16/bf16 accumulate in an f32 image: size it as the larger of the two.
    output(op, &[s[0], c, h, w], work(cols.dtype()))
}

/// Pooling: the geometry (checked arithmetic, done by `out_hw`) and an output of
/// `planes * oh * ow`; `in_hw` is the layout's spatial size for the backward pass.
pub(crate) fn pool(
    op: &'static str,
    x: &HostBuffer,
    l: &Layout,
    p: &PoolParams,
    backward: bool,
) -> Result<()> {
    input(op, x, l, work(x.dtype()))?;
    let out = p.out_hw()?;
    let (have, make) = if backward {
        (out, p.in_hw)
    } else {
        (p.in_hw, out)
    };
    let n = nchw(op, l, None, have)?;
    output(op, &[n, l.shape()[1], make[0], make[1]], work(x.dtype()))?;
    // Max pooling also returns I64 indices of the same shape.
    output(op, &[n, l.shape()[1], make[0], make[1]], DType::I64)
}

/// Adaptive pooling from `[n, c, have]` to `[n, c, make]`: the bins compute `o * len`, so
/// `have * make` must not overflow.
pub(crate) fn adaptive(
    op: &'static str,
    x: &HostBuffer,
    l: &Layout,
    make: [usize; 2],
) -> Result<()> {
    input(op, x, l, work(x.dtype()))?;
    let s = l.shape();
    let have = if s.len() == 4 { [s[2], s[3]] } else { [0, 0] };
    let n = nchw(op, l, None, have)?;
    for a in 0..2 {
        try_numel(op, &[have[a], make[a], 2])?;
    }
    output(op, &[n, s[1], make[0], make[1]], work(x.dtype()))
}

/// Bicubic resampling from `[n, c, have]` to `[n, c, make]`: the tap tables have one entry
/// per output row and column whatever `n`, so those are sized too.
pub(crate) fn resize(
    op: &'static str,
    x: &HostBuffer,
    l: &Layout,
    p: &ResizeParams,
    backward: bool,
) -> Result<()> {
    input(op, x, l, work(x.dtype()))?;
    let (have, make) = if backward {
        (p.out_hw, p.in_hw)
    } else {
        (p.in_hw, p.out_hw)
    };
    let n = nchw(op, l, None, have)?;
    // Tap coordinates are computed as i64 and f64.
    if p.in_hw
        .iter()
        .chain(&p.out_hw)
        .any(|&d| d > isize::MAX as usize)
    {
        return Err(crate::arg_err!(op, "sizes {p:?} are too large"));
    }
    for a in 0..2 {
        check_alloc(op, try_numel(op, &[p.out_hw[a], 8])?, DType::F64)?;
    }
    output(op, &[n, l.shape()[1], make[0], make[1]], work(x.dtype()))
}

/// The fused composites (softmax, GELU, layer norm) take tensors, whose layouts are valid
/// and fit by construction; their outputs and temporaries have the input's shape, in the
/// compute dtype, which a huge broadcast input could make too large to allocate.
pub(crate) fn fused(op: &'static str, shape: &[usize], dtype: DType) -> Result<()> {
    output(op, shape, work(dtype))
}

/// Softmax along `axis`: the kernel moves `axis` last, so it must be a dim.
pub(crate) fn softmax(op: &'static str, shape: &[usize], axis: usize, dtype: DType) -> Result<()> {
    if axis >= shape.len() {
        return Err(Error::Axis {
            op,
            axis: axis as isize,
            rank: shape.len(),
        });
    }
    fused(op, shape, dtype)
}

/// Layer norm over the last `k` dims: `weight` and `bias` (indexed per position of a row)
/// have exactly those dims.
pub(crate) fn layer_norm(
    shape: &[usize],
    dtype: DType,
    params: [Option<&[usize]>; 2],
    k: usize,
) -> Result<()> {
    let op = "layer_norm";
    let r = shape.len();
    if k == 0 || k > r || params.iter().flatten().any(|p| *p != &shape[r - k..]) {
        return Err(crate::shape_err!(
            op,
            "cannot normalize the last {k} dims of {shape:?} with weight/bias {params:?}"
        ));
    }
    fused(op, shape, dtype)
}

/// `copy_into`: both views fit (the kernel checks shapes and dtypes).
pub(crate) fn copy_into(
    src: &HostBuffer,
    sl: &Layout,
    dst: &HostBuffer,
    dl: &Layout,
) -> Result<()> {
    fits("copy_into", src, sl)?;
    fits("copy_into", dst, dl)
}
