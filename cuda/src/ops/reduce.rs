//! Reductions over any axes (kernels: `kernels/reduce.cu`).
//! CPU counterpart: `tensor/src/ops/reduce/cpu.rs`.
//!
//! The view splits into a kept layout (output rows, with the view's offset) and a reduced
//! layout (offset 0), each merged on its own. Work shapes: a warp per row for short rows, a
//! block per row for long ones (split over several blocks with a second combining pass when
//! there are too few rows to fill the device), and 32 rows per block when the rows are the
//! contiguous direction (column reductions). Sums of f32 accumulate in f64 like the CPU's
//! (the H200 runs f64 adds at half the f32 rate, far above what a memory-bound pass needs);
//! f16/bf16 in f32.

use crate::device::DeviceKind;
use crate::driver::{arg, LaunchConfig};
use crate::launch::{count, suffix};
use crate::layout::KernelLayout;
use crate::storage::{check_view, CudaStorage};
use crate::Cuda;
use tessera_tensor::{arg_err, DType, Layout, ReduceOp, Result};

const MODULE: &str = "reduce";
const OP: &str = "reduce";

/// Rows of at most this many elements get a warp each.
const WARP_MAX: usize = 256;
/// The fewest elements a split of a row handles.
const MIN_CHUNK: usize = 4096;
/// Bytes of one partial (the largest accumulator: a value and an i64 index).
const PART_BYTES: usize = 16;

fn code(op: ReduceOp) -> i32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
        ReduceOp::Min => 2,
        ReduceOp::ArgMax => 3,
        ReduceOp::ArgMin => 4,
    }
}

/// Blocks that fill the device (a few per SM on a GPU; few under the shim).
fn target_blocks(dev: &Cuda) -> usize {
    match dev.kind() {
        DeviceKind::Gpu(_) => 1024,
        DeviceKind::Sim => 8,
    }
}

fn cap_grid(dev: &Cuda, blocks: usize) -> u32 {
    let cap = match dev.kind() {
        DeviceKind::Gpu(_) => 65_535,
        DeviceKind::Sim => 8,
    };
    blocks.clamp(1, cap) as u32
}

pub fn reduce(
    dev: &Cuda,
    op: ReduceOp,
    x: &CudaStorage,
    l: &Layout,
    axes: &[usize],
) -> Result<CudaStorage> {
    check_view(dev, OP, x, l, None)?;
    let rank = l.rank();
    if axes.is_empty() || axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= rank) {
        return Err(arg_err!(
            OP,
            "axes {axes:?} must be sorted, distinct and below rank {rank}"
        ));
    }
    let (mut ks, mut kst, mut rs, mut rst) = (vec![], vec![], vec![], vec![]);
    for (d, (&size, &stride)) in l.shape().iter().zip(l.strides()).enumerate() {
        let (s, st) = if axes.contains(&d) {
            (&mut rs, &mut rst)
        } else {
            (&mut ks, &mut kst)
        };
        s.push(size);
        st.push(stride);
    }
    let rows: usize = ks.iter().product();
    let r: usize = rs.iter().product();
    let out_dtype = match op {
        ReduceOp::ArgMax | ReduceOp::ArgMin => DType::I64,
        _ => x.dtype(),
    };
    let out = CudaStorage::uninit(dev, rows, out_dtype)?;
    if rows == 0 {
        return Ok(out);
    }
    if r == 0 && op != ReduceOp::Sum {
        return Err(arg_err!(
            OP,
            "cannot reduce an empty dim of {:?} (axes {axes:?})",
            l.shape()
        ));
    }
    let [kl] = KernelLayout::merged(OP, [&Layout::from_parts(&ks, &kst, l.offset())])?;
    let [rl] = KernelLayout::merged(OP, [&Layout::from_parts(&rs, &rst, 0)])?;
    // The innermost stride of each part after merging (size-1 dims dropped).
    let inner = |shape: &[usize], strides: &[usize]| {
        shape
            .iter()
            .zip(strides)
            .rev()
            .find(|(&s, _)| s > 1)
            .map(|(_, &st)| st)
    };
    let column = inner(&ks, &kst) == Some(1) && inner(&rs, &rst) != Some(1) && rows > 1;
    let (nrows, nr, c) = (count(OP, rows)?, count(OP, r)?, code(op));
    let sfx = suffix(x.dtype());
    let (xp, op_ptr) = (x.base(), out.base());

    if !column && r <= WARP_MAX {
        let warps_per_block = 8usize;
        let cfg = LaunchConfig {
            grid: [cap_grid(dev, rows.div_ceil(warps_per_block)), 1, 1],
            block: [32 * warps_per_block as u32, 1, 1],
            shared_bytes: 0,
        };
        // SAFETY: the view was checked; every row offset and element offset stays inside it.
        unsafe {
            dev.inner.launch(
                MODULE,
                &format!("ts_reduce_warp_{sfx}"),
                &cfg,
                &mut [
                    arg(&kl),
                    arg(&rl),
                    arg(&xp),
                    arg(&op_ptr),
                    arg(&nrows),
                    arg(&nr),
                    arg(&c),
                ],
            )?;
        }
        return Ok(out);
    }

    // Split rows over blockIdx.y when there are too few rows (or 32-row tiles) to fill the device.
    let units = if column { rows.div_ceil(32) } else { rows };
    let splits = if units < target_blocks(dev) && r >= 2 * MIN_CHUNK {
        (target_blocks(dev) / units)
            .min(r / MIN_CHUNK)
            .clamp(1, 1024)
    } else {
        1
    };
    let chunk = r.div_ceil(splits);
    let part = if splits > 1 {
        Some(CudaStorage::uninit(
            dev,
            rows * splits * PART_BYTES,
            DType::U8,
        )?)
    } else {
        None
    };
    let part_ptr: u64 = part.as_ref().map_or(0, |p| p.base());
    let nchunk = count(OP, chunk)?;
    let (kernel, block) = if column {
        ("col", [32, 16, 1])
    } else {
        ("block", [if r >= 8192 { 512 } else { 256 }, 1, 1])
    };
    let cfg = LaunchConfig {
        grid: [cap_grid(dev, units), splits as u32, 1],
        block,
        shared_bytes: 0,
    };
    // SAFETY: as above; `part` holds rows * splits partials of at most PART_BYTES each.
    unsafe {
        dev.inner.launch(
            MODULE,
            &format!("ts_reduce_{kernel}_{sfx}"),
            &cfg,
            &mut [
                arg(&kl),
                arg(&rl),
                arg(&xp),
                arg(&op_ptr),
                arg(&part_ptr),
                arg(&nrows),
                arg(&nr),
                arg(&nchunk),
                arg(&c),
            ],
        )?;
    }
    if splits > 1 {
        let nsplits = splits as i32;
        let cfg = LaunchConfig {
            grid: [cap_grid(dev, rows.div_ceil(8)), 1, 1],
            block: [256, 1, 1],
            shared_bytes: 0,
        };
        // SAFETY: reads the rows * splits partials just written, writes `rows` outputs.
        unsafe {
            dev.inner.launch(
                MODULE,
                &format!("ts_reduce_finish_{sfx}"),
                &cfg,
                &mut [
                    arg(&part_ptr),
                    arg(&op_ptr),
                    arg(&nrows),
                    arg(&nsplits),
                    arg(&c),
                ],
            )?;
        }
    }
    drop(part); // stream-ordered allocator: freeing after the launches is safe
    Ok(out)
}
