//! `Counting`: a second backend whose storage is opaque, as GPU memory is.
//!
//! Its storage wraps the CPU's [`HostBuffer`] in a newtype with a private field and no
//! accessor, so the only way in or out is [`Backend::from_host`] / [`Backend::to_host`]. Every
//! required method delegates to [`Cpu`] and counts how many times it ran; the composites
//! (softmax, layer norm, GELU, convolution, ...) are *not* overridden, so they run through
//! their default compositions from primitives. The backend also checks the parts of the
//! primitive contract that the front end promises (layouts fit their storages, shapes agree,
//! reduction axes are sorted and distinct) and that each primitive returns a storage of the
//! right size, so a front end that hands a backend a bad view fails here loudly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tessera_tensor::{
    Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, Cpu, CpuStorage, DType, HostBuffer,
    Layout, PoolParams, ReduceOp, ResizeParams, Result, UnaryOp,
};

/// Device memory that the host cannot read: no accessor, no `Deref`, no `From`.
#[derive(Debug)]
pub struct OpaqueStorage(CpuStorage);

impl BackendStorage for OpaqueStorage {
    fn dtype(&self) -> DType {
        self.0.dtype()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// A backend that runs the CPU kernels behind opaque storage and counts primitive calls.
/// Clones share their counters; all handles are the same device.
#[derive(Clone, Debug, Default)]
pub struct Counting {
    counts: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl PartialEq for Counting {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Counting {
    /// A fresh device with all counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times primitive `name` ran.
    pub fn count(&self, name: &str) -> usize {
        self.counts.lock().unwrap().get(name).copied().unwrap_or(0)
    }

    /// A snapshot of all counters.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        self.counts.lock().unwrap().clone()
    }

    /// Clears every counter.
    pub fn reset(&self) {
        self.counts.lock().unwrap().clear();
    }

    fn hit(&self, name: &'static str) {
        *self.counts.lock().unwrap().entry(name).or_insert(0) += 1;
    }
}

fn fits(op: &str, s: &OpaqueStorage, l: &Layout) {
    assert!(
        l.required_len() <= s.0.len(),
        "{op}: layout {l:?} does not fit a storage of {} elements",
        s.0.len()
    );
}

fn sized(op: &str, s: OpaqueStorage, len: usize) -> OpaqueStorage {
    assert_eq!(
        s.0.len(),
        len,
        "{op}: primitive returned a storage of the wrong size"
    );
    s
}

fn same_shape(op: &str, a: &Layout, b: &Layout) {
    assert_eq!(a.shape(), b.shape(), "{op}: operand shapes differ");
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Backend for Counting {
    type Storage = OpaqueStorage;

    fn name(&self) -> &'static str {
        "counting"
    }

    fn from_host(&self, data: HostBuffer) -> Result<OpaqueStorage> {
        self.hit("from_host");
        Ok(OpaqueStorage(Cpu.from_host(data)?))
    }

    fn to_host(&self, s: &OpaqueStorage, l: &Layout) -> Result<HostBuffer> {
        self.hit("to_host");
        fits("to_host", s, l);
        Cpu.to_host(&s.0, l)
    }

    fn copy_into(
        &self,
        src: &OpaqueStorage,
        src_layout: &Layout,
        dst: &mut OpaqueStorage,
        dst_layout: &Layout,
    ) -> Result<()> {
        self.hit("copy_into");
        fits("copy_into", src, src_layout);
        fits("copy_into", dst, dst_layout);
        same_shape("copy_into", src_layout, dst_layout);
        Cpu.copy_into(&src.0, src_layout, &mut dst.0, dst_layout)
    }

    fn cast(&self, s: &OpaqueStorage, l: &Layout, dtype: DType) -> Result<OpaqueStorage> {
        self.hit("cast");
        fits("cast", s, l);
        let out = OpaqueStorage(Cpu.cast(&s.0, l, dtype)?);
        assert_eq!(out.dtype(), dtype, "cast: wrong dtype");
        Ok(sized("cast", out, l.numel()))
    }

    fn unary(&self, op: UnaryOp, x: &OpaqueStorage, l: &Layout) -> Result<OpaqueStorage> {
        self.hit("unary");
        fits("unary", x, l);
        let out = OpaqueStorage(Cpu.unary(op, &x.0, l)?);
        Ok(sized("unary", out, l.numel()))
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &OpaqueStorage,
        al: &Layout,
        b: &OpaqueStorage,
        bl: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("binary");
        fits("binary", a, al);
        fits("binary", b, bl);
        same_shape("binary", al, bl);
        let out = OpaqueStorage(Cpu.binary(op, &a.0, al, &b.0, bl)?);
        Ok(sized("binary", out, al.numel()))
    }

    fn compare(
        &self,
        op: CmpOp,
        a: &OpaqueStorage,
        al: &Layout,
        b: &OpaqueStorage,
        bl: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("compare");
        fits("compare", a, al);
        fits("compare", b, bl);
        same_shape("compare", al, bl);
        let out = OpaqueStorage(Cpu.compare(op, &a.0, al, &b.0, bl)?);
        assert_eq!(out.dtype(), DType::U8, "compare: result must be U8");
        Ok(sized("compare", out, al.numel()))
    }

    fn where_cond(
        &self,
        c: &OpaqueStorage,
        cl: &Layout,
        a: &OpaqueStorage,
        al: &Layout,
        b: &OpaqueStorage,
        bl: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("where_cond");
        fits("where_cond", c, cl);
        fits("where_cond", a, al);
        fits("where_cond", b, bl);
        same_shape("where_cond", cl, al);
        same_shape("where_cond", al, bl);
        let out = OpaqueStorage(Cpu.where_cond(&c.0, cl, &a.0, al, &b.0, bl)?);
        Ok(sized("where_cond", out, al.numel()))
    }

    fn reduce(
        &self,
        op: ReduceOp,
        x: &OpaqueStorage,
        l: &Layout,
        axes: &[usize],
    ) -> Result<OpaqueStorage> {
        self.hit("reduce");
        fits("reduce", x, l);
        assert!(!axes.is_empty(), "reduce: empty axis list");
        assert!(
            axes.windows(2).all(|w| w[0] < w[1]) && axes.iter().all(|&a| a < l.rank()),
            "reduce: axes {axes:?} not sorted, distinct and in range for {:?}",
            l.shape()
        );
        let out = OpaqueStorage(Cpu.reduce(op, &x.0, l, axes)?);
        let kept: usize = (0..l.rank())
            .filter(|a| !axes.contains(a))
            .map(|a| l.shape()[a])
            .product();
        Ok(sized("reduce", out, kept))
    }

    fn matmul(
        &self,
        a: &OpaqueStorage,
        al: &Layout,
        b: &OpaqueStorage,
        bl: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("matmul");
        fits("matmul", a, al);
        fits("matmul", b, bl);
        let r = al.rank();
        assert!(r >= 2 && bl.rank() == r, "matmul: ranks {al:?} {bl:?}");
        assert_eq!(
            al.shape()[..r - 2],
            bl.shape()[..r - 2],
            "matmul: batch dims"
        );
        assert_eq!(al.shape()[r - 1], bl.shape()[r - 2], "matmul: inner dims");
        let out = OpaqueStorage(Cpu.matmul(&a.0, al, &b.0, bl)?);
        let len = numel(&al.shape()[..r - 2]) * al.shape()[r - 2] * bl.shape()[r - 1];
        Ok(sized("matmul", out, len))
    }

    fn index_select(
        &self,
        x: &OpaqueStorage,
        l: &Layout,
        axis: usize,
        index: &OpaqueStorage,
        il: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("index_select");
        fits("index_select", x, l);
        fits("index_select", index, il);
        assert_eq!(index.dtype(), DType::I64, "index_select: index dtype");
        assert_eq!(il.rank(), 1, "index_select: index must be 1-D");
        let out = OpaqueStorage(Cpu.index_select(&x.0, l, axis, &index.0, il)?);
        Ok(sized(
            "index_select",
            out,
            l.numel() / l.shape()[axis].max(1) * il.numel(),
        ))
    }

    fn gather(
        &self,
        x: &OpaqueStorage,
        l: &Layout,
        axis: usize,
        index: &OpaqueStorage,
        il: &Layout,
    ) -> Result<OpaqueStorage> {
        self.hit("gather");
        fits("gather", x, l);
        fits("gather", index, il);
        assert_eq!(index.dtype(), DType::I64, "gather: index dtype");
        assert_eq!(il.rank(), l.rank(), "gather: index rank");
        let out = OpaqueStorage(Cpu.gather(&x.0, l, axis, &index.0, il)?);
        Ok(sized("gather", out, il.numel()))
    }

    fn scatter_add(
        &self,
        dst: &mut OpaqueStorage,
        dst_shape: &[usize],
        axis: usize,
        index: &OpaqueStorage,
        il: &Layout,
        src: &OpaqueStorage,
        sl: &Layout,
    ) -> Result<()> {
        self.hit("scatter_add");
        assert_eq!(dst.len(), numel(dst_shape), "scatter_add: dst size");
        fits("scatter_add", index, il);
        fits("scatter_add", src, sl);
        assert_eq!(index.dtype(), DType::I64, "scatter_add: index dtype");
        Cpu.scatter_add(&mut dst.0, dst_shape, axis, &index.0, il, &src.0, sl)
    }

    fn im2col(&self, x: &OpaqueStorage, l: &Layout, p: &Conv2dParams) -> Result<OpaqueStorage> {
        self.hit("im2col");
        fits("im2col", x, l);
        assert_eq!(l.rank(), 4, "im2col: input rank");
        let out = OpaqueStorage(Cpu.im2col(&x.0, l, p)?);
        let [oh, ow] = p.out_hw()?;
        Ok(sized("im2col", out, l.shape()[0] * p.col_rows() * oh * ow))
    }

    fn col2im(&self, cols: &OpaqueStorage, l: &Layout, p: &Conv2dParams) -> Result<OpaqueStorage> {
        self.hit("col2im");
        fits("col2im", cols, l);
        let out = OpaqueStorage(Cpu.col2im(&cols.0, l, p)?);
        let len = l.shape()[0] * p.in_channels * p.in_hw[0] * p.in_hw[1];
        Ok(sized("col2im", out, len))
    }

    fn max_pool2d(
        &self,
        x: &OpaqueStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<(OpaqueStorage, OpaqueStorage)> {
        self.hit("max_pool2d");
        fits("max_pool2d", x, l);
        let (v, i) = Cpu.max_pool2d(&x.0, l, p)?;
        let [oh, ow] = p.out_hw()?;
        let len = l.shape()[0] * l.shape()[1] * oh * ow;
        let i = sized("max_pool2d", OpaqueStorage(i), len);
        assert_eq!(i.dtype(), DType::I64, "max_pool2d: indices must be I64");
        Ok((sized("max_pool2d", OpaqueStorage(v), len), i))
    }

    fn avg_pool2d(&self, x: &OpaqueStorage, l: &Layout, p: &PoolParams) -> Result<OpaqueStorage> {
        self.hit("avg_pool2d");
        fits("avg_pool2d", x, l);
        let out = OpaqueStorage(Cpu.avg_pool2d(&x.0, l, p)?);
        let [oh, ow] = p.out_hw()?;
        Ok(sized(
            "avg_pool2d",
            out,
            l.shape()[0] * l.shape()[1] * oh * ow,
        ))
    }

    fn avg_pool2d_backward(
        &self,
        g: &OpaqueStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<OpaqueStorage> {
        self.hit("avg_pool2d_backward");
        fits("avg_pool2d_backward", g, l);
        let out = OpaqueStorage(Cpu.avg_pool2d_backward(&g.0, l, p)?);
        let len = l.shape()[0] * l.shape()[1] * p.in_hw[0] * p.in_hw[1];
        Ok(sized("avg_pool2d_backward", out, len))
    }

    fn adaptive_avg_pool2d(
        &self,
        x: &OpaqueStorage,
        l: &Layout,
        out_hw: [usize; 2],
    ) -> Result<OpaqueStorage> {
        self.hit("adaptive_avg_pool2d");
        fits("adaptive_avg_pool2d", x, l);
        let out = OpaqueStorage(Cpu.adaptive_avg_pool2d(&x.0, l, out_hw)?);
        let len = l.shape()[0] * l.shape()[1] * out_hw[0] * out_hw[1];
        Ok(sized("adaptive_avg_pool2d", out, len))
    }

    fn adaptive_avg_pool2d_backward(
        &self,
        g: &OpaqueStorage,
        l: &Layout,
        in_hw: [usize; 2],
    ) -> Result<OpaqueStorage> {
        self.hit("adaptive_avg_pool2d_backward");
        fits("adaptive_avg_pool2d_backward", g, l);
        let out = OpaqueStorage(Cpu.adaptive_avg_pool2d_backward(&g.0, l, in_hw)?);
        let len = l.shape()[0] * l.shape()[1] * in_hw[0] * in_hw[1];
        Ok(sized("adaptive_avg_pool2d_backward", out, len))
    }

    fn upsample_bicubic2d(
        &self,
        x: &OpaqueStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<OpaqueStorage> {
        self.hit("upsample_bicubic2d");
        fits("upsample_bicubic2d", x, l);
        let out = OpaqueStorage(Cpu.upsample_bicubic2d(&x.0, l, p)?);
        let len = l.shape()[0] * l.shape()[1] * p.out_hw[0] * p.out_hw[1];
        Ok(sized("upsample_bicubic2d", out, len))
    }

    fn upsample_bicubic2d_backward(
        &self,
        g: &OpaqueStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<OpaqueStorage> {
        self.hit("upsample_bicubic2d_backward");
        fits("upsample_bicubic2d_backward", g, l);
        let out = OpaqueStorage(Cpu.upsample_bicubic2d_backward(&g.0, l, p)?);
        let len = l.shape()[0] * l.shape()[1] * p.in_hw[0] * p.in_hw[1];
        Ok(sized("upsample_bicubic2d_backward", out, len))
    }
}
