//! Batched, strided GEMM (kernels: `kernels/matmul.cu`).
//! CPU counterpart: `tensor/src/ops/matmul/`.
//!
//! Operands are read in place through their strides (transposed and broadcast views need no
//! copy); the output is contiguous `[batch.., m, n]`. f16/bf16 accumulate in f32 and round
//! once, as the CPU does. Kernel choice:
//! - f16/bf16 on a GPU: tensor cores (`ts_matmul_tc_*`, mma.sync), unless the environment sets
//!   `TESSERA_CUDA_NO_TENSOR_CORES=1` (then the scalar kernels, e.g. to compare the two);
//! - otherwise the scalar tiled kernels: 128x128 tiles (`_l_`) when there are enough of them to
//!   fill the GPU, 64x64 (`_s_`) for small or few-tile shapes.

use crate::device::DeviceKind;
use crate::driver::{arg, LaunchConfig};
use crate::launch::{count, suffix, unsupported};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{DType, Error, Layout, Result};

const MODULE: &str = "matmul";
const OP: &str = "matmul";
/// Threads per block of every matmul kernel (`TS_MM_THREADS`).
const THREADS: u32 = 256;
/// 128x128 tiles pay off once there are about as many of them as SMs (132 on an H100/H200).
const LARGE_TILES_MIN: usize = 128;

/// The env var that turns the tensor-core path off (any value but `""`/`"0"`).
pub const NO_TENSOR_CORES_ENV: &str = "TESSERA_CUDA_NO_TENSOR_CORES";

fn tensor_cores_disabled() -> bool {
    std::env::var_os(NO_TENSOR_CORES_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

fn i64_of(what: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| unsupported(OP, format!("{what} {v} exceeds the kernels' i64")))
}

/// The problem as the kernels take it: batch layouts (offsets included), matrix strides,
/// sizes.
struct Gemm {
    ab: KernelLayout,
    a_rs: usize,
    a_cs: usize,
    bb: KernelLayout,
    b_rs: usize,
    b_cs: usize,
    batches: usize,
    m: usize,
    n: usize,
    k: usize,
}

/// When `b` is one matrix broadcast over the batch and `a`'s batch and row dims step like one
/// row dim, the whole batch is one `(batch*m) x k` GEMM (the `[B, N, D] x [D, D']` of a linear
/// layer): more rows per tile, one launch-sized problem. Returns (rows, row stride). As the
/// CPU's `merged_rows`, but dims of size 1 are skipped (their strides never move).
fn merged_rows(al: &Layout, bl: &Layout) -> Option<(usize, usize)> {
    let r = al.rank();
    let (shape, strides) = (al.shape(), al.strides());
    if r <= 2 || (0..r - 2).any(|d| shape[d] != 1 && bl.strides()[d] != 0) {
        return None;
    }
    let mut span = shape[r - 2].checked_mul(strides[r - 2])?;
    for d in (0..r - 2).rev() {
        if shape[d] != 1 && strides[d] != span {
            return None;
        }
        span = span.checked_mul(shape[d])?;
    }
    Some((shape[..r - 1].iter().product(), strides[r - 2]))
}

impl Gemm {
    fn new(al: &Layout, bl: &Layout) -> Result<Self> {
        let r = al.rank();
        let (m, k, n) = (al.shape()[r - 2], al.shape()[r - 1], bl.shape()[r - 1]);
        // The stride of a size-1 dim is never followed; 0 keeps it in range of i64.
        let st = |l: &Layout, d: usize| if l.shape()[d] > 1 { l.strides()[d] } else { 0 };
        let (b_rs, b_cs) = (st(bl, r - 2), st(bl, r - 1));
        let a_cs = st(al, r - 1);
        if let Some((rows, rs)) = merged_rows(al, bl) {
            let none = |off| Layout::try_from_parts(&[], &[], off);
            let [ab, bb] = KernelLayout::merged(OP, [&none(al.offset())?, &none(bl.offset())?])?;
            let a_rs = if rows > 1 { rs } else { 0 };
            return Ok(Gemm {
                ab,
                a_rs,
                a_cs,
                bb,
                b_rs,
                b_cs,
                batches: 1,
                m: rows,
                n,
                k,
            });
        }
        let batch = |l: &Layout| {
            Layout::try_from_parts(&l.shape()[..r - 2], &l.strides()[..r - 2], l.offset())
        };
        let [ab, bb] = KernelLayout::merged(OP, [&batch(al)?, &batch(bl)?])?;
        let batches = al.shape()[..r - 2].iter().product();
        Ok(Gemm {
            ab,
            a_rs: st(al, r - 2),
            a_cs,
            bb,
            b_rs,
            b_cs,
            batches,
            m,
            n,
            k,
        })
    }

    /// Bit 0: `a` is read along k (k stride the smaller); bit 1: `b` is. A size-1 dim never
    /// decides (its stride is 0 here).
    fn fast(&self) -> i32 {
        let a_k = self.k > 1 && (self.m == 1 || self.a_cs <= self.a_rs);
        let b_k = self.k > 1 && (self.n == 1 || self.b_rs <= self.b_cs);
        i32::from(a_k) | (i32::from(b_k) << 1)
    }
}

fn check_shapes(al: &Layout, bl: &Layout) -> Result<()> {
    let (sa, sb, r) = (al.shape(), bl.shape(), al.rank());
    if r < 2 || bl.rank() != r || sa[..r - 2] != sb[..r - 2] || sa[r - 1] != sb[r - 2] {
        return Err(tessera_tensor::shape_err!(
            OP,
            "needs [batch.., m, k] x [batch.., k, n] with equal batch dims, got {sa:?} x {sb:?}"
        ));
    }
    Ok(())
}

/// Tiles of `tile` x `tile` over the whole batch.
fn tiles(g: &Gemm, tile: usize) -> usize {
    g.batches
        .saturating_mul(g.m.div_ceil(tile))
        .saturating_mul(g.n.div_ceil(tile))
}

/// (kernel variant, tile edge) for this problem on this device.
fn choose(dev: &Cuda, g: &Gemm, dtype: DType) -> (&'static str, usize) {
    let gpu = matches!(dev.kind(), DeviceKind::Gpu(_));
    let half = matches!(dtype, DType::F16 | DType::BF16);
    if gpu && half && !tensor_cores_disabled() {
        return ("tc", 128);
    }
    // Under the shim the big tile means half the barriers (fiber switches) per FLOP.
    let enough = if gpu {
        tiles(g, 128) >= LARGE_TILES_MIN
    } else {
        true
    };
    if g.m > 64 && g.n > 64 && enough {
        ("l", 128)
    } else {
        ("s", 64)
    }
}

pub fn matmul(
    dev: &Cuda,
    a: &CudaStorage,
    al: &Layout,
    b: &CudaStorage,
    bl: &Layout,
) -> Result<CudaStorage> {
    check_view(dev, OP, a, al, None)?;
    check_view(dev, OP, b, bl, Some(a.dtype()))?;
    let dtype = a.dtype();
    if !dtype.is_float() {
        return Err(Error::DType {
            op: OP,
            msg: format!("needs two float tensors of one dtype, got {dtype:?}"),
        });
    }
    check_shapes(al, bl)?;
    let r = al.rank();
    let (m, n) = (al.shape()[r - 2], bl.shape()[r - 1]);
    let batches: usize = al.shape()[..r - 2].iter().product();
    let len = batches
        .checked_mul(m)
        .and_then(|x| x.checked_mul(n))
        .ok_or_else(|| unsupported(OP, "the output's element count overflows"))?;
    let out = CudaStorage::uninit(dev, len, dtype)?;
    if len == 0 {
        return Ok(out);
    }
    let g = Gemm::new(al, bl)?;
    let (variant, tile) = choose(dev, &g, dtype);
    let cap = match dev.kind() {
        DeviceKind::Gpu(_) => i32::MAX as usize,
        // Each block's 256 fibers run on one worker thread: a few blocks cover the workers.
        DeviceKind::Sim => 8,
    };
    let blocks = tiles(&g, tile).clamp(1, cap) as u32;
    let cfg = LaunchConfig {
        grid: [blocks, 1, 1],
        block: [THREADS, 1, 1],
        shared_bytes: 0,
    };
    let kernel = format!("ts_matmul_{variant}_{}", suffix(dtype));
    let (ap, bp, op) = (a.base(), b.base(), out.base());
    let (a_rs, a_cs) = (i64_of("a stride", g.a_rs)?, i64_of("a stride", g.a_cs)?);
    let (b_rs, b_cs) = (i64_of("b stride", g.b_rs)?, i64_of("b stride", g.b_cs)?);
    let (nb, mm, nn, kk) = (
        count(OP, g.batches)?,
        count(OP, g.m)?,
        count(OP, g.n)?,
        count(OP, g.k)?,
    );
    // The kernels compute offsets up to row * stride in i64; an output index must fit too.
    count(OP, len)?;
    let fast = g.fast();
    // SAFETY: both views were checked against their storages; the kernels read only elements
    // with row < m, k index < k, col < n of each batch entry (inside the views) and write
    // `len` contiguous elements of `out`.
    unsafe {
        dev.inner.launch(
            MODULE,
            &kernel,
            &cfg,
            &mut [
                arg(&g.ab),
                arg(&ap),
                arg(&a_rs),
                arg(&a_cs),
                arg(&g.bb),
                arg(&bp),
                arg(&b_rs),
                arg(&b_cs),
                arg(&op),
                arg(&nb),
                arg(&mm),
                arg(&nn),
                arg(&kk),
                arg(&fast),
            ],
        )?
    };
    Ok(out)
}
