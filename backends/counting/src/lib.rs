//! # tessera-backend-counting: a backend written outside the core crates
//!
//! The worked example of the [`Backend`] contract (see `tessera_tensor::backend`'s module
//! docs for the list of what a backend must implement and what it may override).
//! [`CountingBackend`] wraps the CPU backend and counts every primitive call by name (and,
//! when asked, logs each call with its operands' shapes to stderr). It is written the way an
//! embedder outside this repository would write it: it depends only on the public API of
//! `tessera-tensor`.
//!
//! It implements **only the required methods** of [`Backend`] (the primitives listed in
//! [`PRIMITIVES`], plus [`Backend::name`] and the associated `Storage` type) and leaves every
//! provided method to its default: softmax, layer norm, GELU, convolution and their backward
//! products are composed from primitives, the in-place ops compute out of place and copy
//! back, the optimizer updates compose in-place primitives, and `full`/`alloc_uninit` fill
//! on the host and call `from_host`. So the counts show which primitives a training step is
//! made of, and the backend is what a new device has to provide at the least.
//!
//! Its storage, [`CountedStorage`], wraps the CPU's storage behind a private field: the only
//! way in or out is [`Backend::from_host`] / [`Backend::to_host`], as with device memory.
//!
//! ```
//! use tessera_backend_counting::CountingBackend;
//! use tessera_tensor::{DType, Tensor};
//!
//! let dev = CountingBackend::new();
//! let x = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2], &dev).unwrap();
//! let y = x.matmul(&x).unwrap().softmax(-1).unwrap();
//! assert_eq!(y.dtype(), DType::F32);
//! assert_eq!(dev.count("matmul"), 1);
//! // softmax is not overridden: its default ran max, sub, exp, sum and div primitives.
//! assert_eq!(dev.count("reduce"), 2);
//! println!("{}", dev.table());
//! ```

use std::collections::BTreeMap;
use std::fmt::{self, Debug, Write as _};
use std::sync::{Arc, Mutex, MutexGuard};
use tessera_tensor::{
    Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, Cpu, CpuStorage, DType, HostBuffer,
    Layout, PoolParams, ReduceOp, ResizeParams, Result, UnaryOp,
};

/// The primitives [`CountingBackend`] counts: every required method of [`Backend`] except
/// [`Backend::name`], in the trait's order. A test (`tests/trait_list.rs`) checks this list,
/// the backend docs and this crate's README against the trait's source.
pub const PRIMITIVES: &[&str] = &[
    "from_host",
    "to_host",
    "copy_into",
    "cast",
    "unary",
    "binary",
    "compare",
    "where_cond",
    "reduce",
    "matmul",
    "index_select",
    "gather",
    "scatter_add",
    "im2col",
    "col2im",
    "max_pool2d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "upsample_bicubic2d",
    "upsample_bicubic2d_backward",
];

/// An allocation of [`CountingBackend`]: the CPU's storage behind a private field, with no
/// accessor, so the host reaches it only through `from_host` / `to_host`.
#[derive(Debug)]
pub struct CountedStorage(CpuStorage);

impl BackendStorage for CountedStorage {
    fn dtype(&self) -> DType {
        self.0.dtype()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

#[derive(Debug, Default)]
struct Counters {
    /// Calls per primitive name.
    calls: BTreeMap<&'static str, u64>,
    /// Calls per primitive and op kind (`"unary/Exp"`, `"reduce/Sum"`, `"matmul"`).
    ops: BTreeMap<String, u64>,
    /// Elements of every output per primitive (a rough measure of the work).
    elements: BTreeMap<&'static str, u64>,
    /// Whether each call is printed to stderr.
    log: bool,
}

/// The CPU backend behind a counter of primitive calls.
///
/// Clones share their counters and are the same device; two handles made by separate
/// [`CountingBackend::new`] calls are different devices (their tensors do not mix), so each
/// test or run counts on its own.
#[derive(Clone, Default)]
pub struct CountingBackend {
    counters: Arc<Mutex<Counters>>,
}

impl Debug for CountingBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingBackend")
            .field("calls", &self.total())
            .finish()
    }
}

impl PartialEq for CountingBackend {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.counters, &other.counters)
    }
}

impl CountingBackend {
    /// A new device with every counter at zero and logging off.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // A panic while the lock was held (a failed assertion in a test) leaves plain counts.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prints every primitive call to stderr from now on (`on = true`) or stops.
    pub fn set_logging(&self, on: bool) {
        self.lock().log = on;
    }

    /// How many times primitive `name` (one of [`PRIMITIVES`]) ran.
    pub fn count(&self, name: &str) -> u64 {
        self.lock().calls.get(name).copied().unwrap_or(0)
    }

    /// Calls per primitive, only those that ran.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.lock().calls.clone()
    }

    /// Calls per primitive and op kind (the variant's name, without its parameters):
    /// `"unary/Exp"`, `"unary/Affine"`, `"binary/Mul"`, `"reduce/Sum"`, `"cast/F32"`,
    /// `"from_host/F64"` (the uploaded dtype); the primitives without an op kind appear under
    /// their own name.
    pub fn op_counts(&self) -> BTreeMap<String, u64> {
        self.lock().ops.clone()
    }

    /// Output elements per primitive, summed over its calls.
    pub fn elements(&self) -> BTreeMap<&'static str, u64> {
        self.lock().elements.clone()
    }

    /// Calls of all primitives together.
    pub fn total(&self) -> u64 {
        self.lock().calls.values().sum()
    }

    /// Sets every counter back to zero (logging stays as it is).
    pub fn reset(&self) {
        let mut c = self.lock();
        c.calls.clear();
        c.ops.clear();
        c.elements.clear();
    }

    /// The counts as a text table: one row per primitive of [`PRIMITIVES`] (zero rows
    /// included, so what a workload does *not* use shows too), with its calls, its share of
    /// all calls, the output elements and the op kinds that ran, most frequent first.
    pub fn table(&self) -> String {
        let c = self.lock();
        let total: u64 = c.calls.values().sum();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| primitive | calls | share | output elements | by op kind |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        for &name in PRIMITIVES {
            let n = c.calls.get(name).copied().unwrap_or(0);
            let share = if total == 0 {
                0.0
            } else {
                100.0 * n as f64 / total as f64
            };
            let prefix = format!("{name}/");
            let mut kinds: Vec<(&str, u64)> = c
                .ops
                .iter()
                .filter_map(|(k, &v)| k.strip_prefix(&prefix).map(|op| (op, v)))
                .collect();
            kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(
                out,
                "| `{name}` | {n} | {share:.1}% | {} | {} |",
                c.elements.get(name).copied().unwrap_or(0),
                kinds.join(", ")
            );
        }
        let elements: u64 = c.elements.values().sum();
        let _ = writeln!(out, "| **total** | {total} | 100.0% | {elements} | |");
        out
    }

    /// Counts one call of `name` (with its op kind, if any) and logs it with its operands'
    /// shapes if logging is on. Called before the call runs, so the log's last line names the
    /// primitive that failed or crashed.
    fn record(&self, name: &'static str, op: Option<&dyn Debug>, shapes: &[&[usize]]) {
        let mut c = self.lock();
        *c.calls.entry(name).or_insert(0) += 1;
        let key = match op {
            // The variant's name only: `Affine { mul: 0.5, add: 0.0 }` counts as `Affine`.
            Some(op) => {
                let op = format!("{op:?}");
                let variant = op.split([' ', '(', '{']).next().unwrap_or_default();
                format!("{name}/{variant}")
            }
            None => name.to_string(),
        };
        *c.ops.entry(key).or_insert(0) += 1;
        if c.log {
            let n: u64 = c.calls.values().sum();
            let op = op.map(|o| format!(" {o:?}")).unwrap_or_default();
            eprintln!("[counting #{n}] {name}{op} {shapes:?}");
        }
    }

    /// Adds `n` output elements to primitive `name`.
    fn produced(&self, name: &'static str, n: usize) {
        *self.lock().elements.entry(name).or_insert(0) += n as u64;
    }

    /// Wraps the CPU's output of `name` and counts its elements.
    fn wrap(&self, name: &'static str, r: Result<CpuStorage>) -> Result<CountedStorage> {
        let s = r?;
        self.produced(name, s.len());
        Ok(CountedStorage(s))
    }
}

impl Backend for CountingBackend {
    type Storage = CountedStorage;

    fn name(&self) -> &'static str {
        "counting"
    }

    fn from_host(&self, data: HostBuffer) -> Result<CountedStorage> {
        self.record("from_host", Some(&data.dtype()), &[&[data.len()]]);
        self.wrap("from_host", Cpu.from_host(data))
    }

    fn to_host(&self, s: &CountedStorage, l: &Layout) -> Result<HostBuffer> {
        self.record("to_host", None, &[l.shape()]);
        let out = Cpu.to_host(&s.0, l)?;
        self.produced("to_host", out.len());
        Ok(out)
    }

    fn copy_into(
        &self,
        src: &CountedStorage,
        src_layout: &Layout,
        dst: &mut CountedStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        let shapes = [src_layout.shape(), dst_layout.shape()];
        self.record("copy_into", None, &shapes);
        Cpu.copy_into(&src.0, src_layout, &mut dst.0, dst_layout)?;
        self.produced("copy_into", dst_layout.numel());
        Ok(())
    }

    fn cast(&self, s: &CountedStorage, l: &Layout, dtype: DType) -> Result<CountedStorage> {
        self.record("cast", Some(&dtype), &[l.shape()]);
        self.wrap("cast", Cpu.cast(&s.0, l, dtype))
    }

    fn unary(&self, op: UnaryOp, x: &CountedStorage, l: &Layout) -> Result<CountedStorage> {
        self.record("unary", Some(&op), &[l.shape()]);
        self.wrap("unary", Cpu.unary(op, &x.0, l))
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &CountedStorage,
        a_layout: &Layout,
        b: &CountedStorage,
        b_layout: &Layout,
    ) -> Result<CountedStorage> {
        self.record("binary", Some(&op), &[a_layout.shape(), b_layout.shape()]);
        self.wrap("binary", Cpu.binary(op, &a.0, a_layout, &b.0, b_layout))
    }

    fn compare(
        &self,
        op: CmpOp,
        a: &CountedStorage,
        a_layout: &Layout,
        b: &CountedStorage,
        b_layout: &Layout,
    ) -> Result<CountedStorage> {
        self.record("compare", Some(&op), &[a_layout.shape(), b_layout.shape()]);
        self.wrap("compare", Cpu.compare(op, &a.0, a_layout, &b.0, b_layout))
    }

    fn where_cond(
        &self,
        cond: &CountedStorage,
        cond_layout: &Layout,
        a: &CountedStorage,
        a_layout: &Layout,
        b: &CountedStorage,
        b_layout: &Layout,
    ) -> Result<CountedStorage> {
        let shapes = [cond_layout.shape(), a_layout.shape(), b_layout.shape()];
        self.record("where_cond", None, &shapes);
        let out = Cpu.where_cond(&cond.0, cond_layout, &a.0, a_layout, &b.0, b_layout);
        self.wrap("where_cond", out)
    }

    fn reduce(
        &self,
        op: ReduceOp,
        x: &CountedStorage,
        l: &Layout,
        axes: &[usize],
    ) -> Result<CountedStorage> {
        self.record("reduce", Some(&op), &[l.shape(), axes]);
        self.wrap("reduce", Cpu.reduce(op, &x.0, l, axes))
    }

    fn matmul(
        &self,
        a: &CountedStorage,
        a_layout: &Layout,
        b: &CountedStorage,
        b_layout: &Layout,
    ) -> Result<CountedStorage> {
        self.record("matmul", None, &[a_layout.shape(), b_layout.shape()]);
        self.wrap("matmul", Cpu.matmul(&a.0, a_layout, &b.0, b_layout))
    }

    fn index_select(
        &self,
        x: &CountedStorage,
        layout: &Layout,
        axis: usize,
        index: &CountedStorage,
        index_layout: &Layout,
    ) -> Result<CountedStorage> {
        self.record(
            "index_select",
            None,
            &[layout.shape(), index_layout.shape()],
        );
        let out = Cpu.index_select(&x.0, layout, axis, &index.0, index_layout);
        self.wrap("index_select", out)
    }

    fn gather(
        &self,
        x: &CountedStorage,
        layout: &Layout,
        axis: usize,
        index: &CountedStorage,
        index_layout: &Layout,
    ) -> Result<CountedStorage> {
        self.record("gather", None, &[layout.shape(), index_layout.shape()]);
        let out = Cpu.gather(&x.0, layout, axis, &index.0, index_layout);
        self.wrap("gather", out)
    }

    fn scatter_add(
        &self,
        dst: &mut CountedStorage,
        dst_shape: &[usize],
        axis: usize,
        index: &CountedStorage,
        index_layout: &Layout,
        src: &CountedStorage,
        src_layout: &Layout,
    ) -> Result<()> {
        let shapes = [dst_shape, index_layout.shape(), src_layout.shape()];
        self.record("scatter_add", None, &shapes);
        let (i, s) = (&index.0, &src.0);
        Cpu.scatter_add(&mut dst.0, dst_shape, axis, i, index_layout, s, src_layout)?;
        self.produced("scatter_add", dst.len());
        Ok(())
    }

    fn im2col(&self, x: &CountedStorage, l: &Layout, p: &Conv2dParams) -> Result<CountedStorage> {
        self.record("im2col", None, &[l.shape()]);
        self.wrap("im2col", Cpu.im2col(&x.0, l, p))
    }

    fn col2im(&self, c: &CountedStorage, l: &Layout, p: &Conv2dParams) -> Result<CountedStorage> {
        self.record("col2im", None, &[l.shape()]);
        self.wrap("col2im", Cpu.col2im(&c.0, l, p))
    }

    fn max_pool2d(
        &self,
        x: &CountedStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<(CountedStorage, CountedStorage)> {
        self.record("max_pool2d", None, &[l.shape()]);
        let (values, indices) = Cpu.max_pool2d(&x.0, l, p)?;
        self.produced("max_pool2d", values.len());
        Ok((CountedStorage(values), CountedStorage(indices)))
    }

    fn avg_pool2d(&self, x: &CountedStorage, l: &Layout, p: &PoolParams) -> Result<CountedStorage> {
        self.record("avg_pool2d", None, &[l.shape()]);
        self.wrap("avg_pool2d", Cpu.avg_pool2d(&x.0, l, p))
    }

    fn avg_pool2d_backward(
        &self,
        grad: &CountedStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<CountedStorage> {
        self.record("avg_pool2d_backward", None, &[l.shape()]);
        self.wrap(
            "avg_pool2d_backward",
            Cpu.avg_pool2d_backward(&grad.0, l, p),
        )
    }

    fn adaptive_avg_pool2d(
        &self,
        x: &CountedStorage,
        l: &Layout,
        out_hw: [usize; 2],
    ) -> Result<CountedStorage> {
        self.record("adaptive_avg_pool2d", None, &[l.shape(), &out_hw]);
        let out = Cpu.adaptive_avg_pool2d(&x.0, l, out_hw);
        self.wrap("adaptive_avg_pool2d", out)
    }

    fn adaptive_avg_pool2d_backward(
        &self,
        grad: &CountedStorage,
        l: &Layout,
        in_hw: [usize; 2],
    ) -> Result<CountedStorage> {
        self.record("adaptive_avg_pool2d_backward", None, &[l.shape(), &in_hw]);
        let out = Cpu.adaptive_avg_pool2d_backward(&grad.0, l, in_hw);
        self.wrap("adaptive_avg_pool2d_backward", out)
    }

    fn upsample_bicubic2d(
        &self,
        x: &CountedStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CountedStorage> {
        self.record("upsample_bicubic2d", None, &[l.shape(), &p.out_hw]);
        self.wrap("upsample_bicubic2d", Cpu.upsample_bicubic2d(&x.0, l, p))
    }

    fn upsample_bicubic2d_backward(
        &self,
        grad: &CountedStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CountedStorage> {
        self.record("upsample_bicubic2d_backward", None, &[l.shape(), &p.in_hw]);
        let out = Cpu.upsample_bicubic2d_backward(&grad.0, l, p);
        self.wrap("upsample_bicubic2d_backward", out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::Tensor;

    #[test]
    fn clones_share_counters_and_separate_devices_do_not_mix() {
        let (a, b) = (CountingBackend::new(), CountingBackend::new());
        assert_eq!(a, a.clone());
        assert_ne!(a, b);
        let x = Tensor::from_slice(&[1.0f32, 2.0], &[2], &a).unwrap();
        let y = Tensor::from_slice(&[1.0f32, 2.0], &[2], &b).unwrap();
        assert!(x.add(&y).is_err(), "tensors of two devices mixed");
        assert_eq!(x.add(&x).unwrap().to_f64_vec().unwrap(), [2.0, 4.0]);
        let a2 = a.clone();
        assert_eq!((a2.count("from_host"), a2.count("binary")), (1, 1));
        assert_eq!(a.op_counts()["binary/Add"], 1);
        assert_eq!(a.elements()["binary"], 2);
        assert_eq!(b.total(), 1);
        assert!(a.table().contains("| `binary` | 1 |"), "{}", a.table());
        a.reset();
        assert_eq!(a2.total(), 0);
    }
}
