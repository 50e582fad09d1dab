//! The kit catches a wrong backend: `Faulty` runs the CPU's kernels but breaks one
//! primitive, and the check that covers it must fail with a message that names the case
//! and the first mismatching element.

use tessera_tensor::{
    Backend, BackendStorage, BinaryOp, CmpOp, Conv2dParams, Cpu, CpuStorage, DType, HostBuffer,
    Layout, PoolParams, ReduceOp, ResizeParams, Result, UnaryOp,
};
use tessera_testkit::{gradients, ops, props, steps, Failure, ToleranceTable};

/// Which primitive `Faulty` gets wrong.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// `exp` results 0.1 % too large.
    ExpScale,
    /// `matmul` reads a non-contiguous right operand as if it were contiguous.
    MatmulIgnoresStrides,
    /// `col2im` (the input gradient of a convolution) 1 % too large.
    Col2imScale,
}

#[derive(Clone, Debug, PartialEq)]
struct Faulty(Fault);

fn scaled(x: CpuStorage, k: f64) -> Result<CpuStorage> {
    let dtype = x.dtype();
    let v: Vec<f64> = x.to_f64_vec().iter().map(|v| v * k).collect();
    let n = v.len();
    let v = Cpu.from_host(HostBuffer::from_vec(v))?;
    Cpu.cast(&v, &Layout::contiguous(&[n]), dtype)
}

impl Backend for Faulty {
    type Storage = CpuStorage;
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn from_host(&self, d: HostBuffer) -> Result<CpuStorage> {
        Cpu.from_host(d)
    }
    fn to_host(&self, s: &CpuStorage, l: &Layout) -> Result<HostBuffer> {
        Cpu.to_host(s, l)
    }
    fn copy_into(
        &self,
        s: &CpuStorage,
        sl: &Layout,
        d: &mut CpuStorage,
        dl: &Layout,
    ) -> Result<()> {
        Cpu.copy_into(s, sl, d, dl)
    }
    fn cast(&self, s: &CpuStorage, l: &Layout, dtype: DType) -> Result<CpuStorage> {
        Cpu.cast(s, l, dtype)
    }
    fn unary(&self, op: UnaryOp, x: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
        let y = Cpu.unary(op, x, l)?;
        if self.0 == Fault::ExpScale && op == UnaryOp::Exp {
            return scaled(y, 1.001);
        }
        Ok(y)
    }
    fn binary(
        &self,
        op: BinaryOp,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        Cpu.binary(op, a, al, b, bl)
    }
    fn compare(
        &self,
        op: CmpOp,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        Cpu.compare(op, a, al, b, bl)
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
        Cpu.where_cond(c, cl, a, al, b, bl)
    }
    fn reduce(
        &self,
        op: ReduceOp,
        x: &CpuStorage,
        l: &Layout,
        axes: &[usize],
    ) -> Result<CpuStorage> {
        Cpu.reduce(op, x, l, axes)
    }
    fn matmul(
        &self,
        a: &CpuStorage,
        al: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<CpuStorage> {
        if self.0 == Fault::MatmulIgnoresStrides && !bl.is_contiguous() && !bl.has_zero_stride() {
            return Cpu.matmul(a, al, b, &Layout::contiguous(bl.shape()));
        }
        Cpu.matmul(a, al, b, bl)
    }
    fn index_select(
        &self,
        x: &CpuStorage,
        l: &Layout,
        axis: usize,
        i: &CpuStorage,
        il: &Layout,
    ) -> Result<CpuStorage> {
        Cpu.index_select(x, l, axis, i, il)
    }
    fn gather(
        &self,
        x: &CpuStorage,
        l: &Layout,
        axis: usize,
        i: &CpuStorage,
        il: &Layout,
    ) -> Result<CpuStorage> {
        Cpu.gather(x, l, axis, i, il)
    }
    #[allow(clippy::too_many_arguments)]
    fn scatter_add(
        &self,
        d: &mut CpuStorage,
        ds: &[usize],
        axis: usize,
        i: &CpuStorage,
        il: &Layout,
        s: &CpuStorage,
        sl: &Layout,
    ) -> Result<()> {
        Cpu.scatter_add(d, ds, axis, i, il, s, sl)
    }
    fn im2col(&self, x: &CpuStorage, l: &Layout, p: &Conv2dParams) -> Result<CpuStorage> {
        Cpu.im2col(x, l, p)
    }
    fn col2im(&self, c: &CpuStorage, l: &Layout, p: &Conv2dParams) -> Result<CpuStorage> {
        let y = Cpu.col2im(c, l, p)?;
        if self.0 == Fault::Col2imScale {
            return scaled(y, 1.01);
        }
        Ok(y)
    }
    fn max_pool2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<(CpuStorage, CpuStorage)> {
        Cpu.max_pool2d(x, l, p)
    }
    fn avg_pool2d(&self, x: &CpuStorage, l: &Layout, p: &PoolParams) -> Result<CpuStorage> {
        Cpu.avg_pool2d(x, l, p)
    }
    fn avg_pool2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        p: &PoolParams,
    ) -> Result<CpuStorage> {
        Cpu.avg_pool2d_backward(g, l, p)
    }
    fn adaptive_avg_pool2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        hw: [usize; 2],
    ) -> Result<CpuStorage> {
        Cpu.adaptive_avg_pool2d(x, l, hw)
    }
    fn adaptive_avg_pool2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        hw: [usize; 2],
    ) -> Result<CpuStorage> {
        Cpu.adaptive_avg_pool2d_backward(g, l, hw)
    }
    fn upsample_bicubic2d(
        &self,
        x: &CpuStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CpuStorage> {
        Cpu.upsample_bicubic2d(x, l, p)
    }
    fn upsample_bicubic2d_backward(
        &self,
        g: &CpuStorage,
        l: &Layout,
        p: &ResizeParams,
    ) -> Result<CpuStorage> {
        Cpu.upsample_bicubic2d_backward(g, l, p)
    }
}

fn failures(r: std::result::Result<(), Vec<Failure>>) -> Vec<Failure> {
    r.expect_err("the kit passed a faulty backend")
}

#[test]
fn a_wrong_exp_fails_the_op_and_property_checks() {
    let dev = Faulty(Fault::ExpScale);
    let tol = ToleranceTable::default();
    let f = failures(ops::check_ops(&dev, &tol));
    let unary = f
        .iter()
        .find(|f| f.check.starts_with("ops/unary"))
        .expect("unary fails");
    eprintln!("{unary}");
    assert!(
        unary.to_string().contains("expected") && unary.to_string().contains("actual"),
        "{unary}"
    );
    let f = props::check_unary_props(&dev, &tol, 64).expect_err("props catch it");
    eprintln!("{f}");
    assert!(f.detail.contains("minimal failing case"), "{f}");
    // Exact checks inside a family fail too, even where the CPU comparison would not run.
    assert!(ops::check_family(&dev, "softmax", &tol).is_err());
    // Softmax runs through exp: the DINO step's loss is already off.
    let e = steps::check_dino_vit_step(&dev, &tol).expect_err("dino step");
    assert!(e.check.ends_with("/loss"), "{e}");
}

#[test]
fn a_matmul_that_ignores_strides_fails_the_view_properties() {
    let dev = Faulty(Fault::MatmulIgnoresStrides);
    let tol = ToleranceTable::default();
    let f = props::check_matmul_props(&dev, &tol, 64).expect_err("views catch it");
    eprintln!("{f}");
    assert!(f.detail.contains("element ["), "{f}");
    // Contiguous operands are right: the minimal case has a strided right operand.
    let rhs = f.detail.rsplit("Input {").next().unwrap();
    assert!(!rhs.contains("Contiguous"), "{f}");
}

#[test]
fn a_wrong_conv_input_gradient_fails_gradcheck_and_the_byol_step() {
    let dev = Faulty(Fault::Col2imScale);
    let f = failures(gradients::check_gradients(&dev));
    assert!(
        f.iter().any(|f| f.check.starts_with("gradients/conv2d")),
        "{f:?}"
    );
    assert!(f.iter().all(|f| f.check.contains("conv2d")), "{f:?}");
    let e = steps::check_byol_resnet_step(&dev, &ToleranceTable::default()).expect_err("step");
    eprintln!("{e}");
    assert!(e.check.contains("/grad"), "{e}");
}
