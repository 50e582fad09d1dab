//! Tessera's ops against PyTorch reference values (`tests/fixtures/tensor_ops.safetensors`,
//! written by `scripts/gen_fixtures.py`; no Python is needed to run these tests).
//!
//! Every case of the file is run three ways:
//! - `F64`: inputs as stored; outputs within ~1e-10 relative of PyTorch's f64 results;
//! - `F32`: inputs cast down (exactly: the generator stores f32-representable inputs);
//!   outputs within `1e-5 * max|ref| + 1e-6`;
//! - `Strided`: f64 inputs built as non-contiguous views (a transposed buffer behind an offset
//!   for rank >= 2, every other element of a larger buffer for rank 1) whose gaps hold NaN, so
//!   a kernel that ignores strides or offsets fails loudly.
//!
//! Integer results (argmax, max-pool indices, comparisons) and casts compare exactly.
//! One `#[test]` per op family; each runs all cases of that family (cases are added in the
//! Python script only) and reports every failing case and mode, not just the first.

#[path = "common/fixtures.rs"]
mod fixtures;

use fixtures::{Array, Case, Fixtures, Json};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use tessera_tensor::{ConvOptions, Error};
use tessera_tensor::{Cpu, DType, HostBuffer, Pool2dOptions, Tensor};

type T = Tensor<Cpu>;
type R<X = ()> = Result<X, Box<dyn std::error::Error>>;

fn fx() -> &'static Fixtures {
    static FX: OnceLock<Fixtures> = OnceLock::new();
    FX.get_or_init(|| Fixtures::open("tensor_ops.safetensors"))
}

// ---------------------------------------------------------------------------------- harness

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    F64,
    F32,
    Strided,
}

const ALL_MODES: &[Mode] = &[Mode::F64, Mode::F32, Mode::Strided];

/// One case run in one mode: builds inputs and records mismatches.
struct Run<'a> {
    case: &'a Case<'a>,
    mode: Mode,
    errors: RefCell<Vec<String>>,
}

/// A tensor of `shape` holding `vals` (row-major) converted to `dtype`; with `strided`, a
/// non-contiguous view with NaN (or an invalid value for integers) in the gaps.
fn make_tensor(vals: &[f64], shape: &[usize], dtype: DType, strided: bool) -> R<T> {
    let host = |v: Vec<f64>, s: &[usize]| T::from_host(HostBuffer::F64(v).cast(dtype), s, &Cpu);
    let gap = match dtype {
        DType::I64 => -1.0,
        DType::U8 => 2.0,
        _ => f64::NAN,
    };
    let rank = shape.len();
    if !strided || rank == 0 || vals.is_empty() {
        return Ok(host(vals.to_vec(), shape)?);
    }
    if rank == 1 {
        // element i lives at 2i + 1 of a buffer of 2n + 1
        let n = shape[0];
        let mut buf = vec![gap; 2 * n + 1];
        for (i, &v) in vals.iter().enumerate() {
            buf[2 * i + 1] = v;
        }
        let t = host(buf, &[2 * n + 1])?.slice(0, 1, 2 * n + 1, 2)?;
        assert!(!t.is_contiguous() || n <= 1);
        return Ok(t);
    }
    // Store the transpose of the last two dims contiguously, behind one slab of gaps along
    // dim 0, then view it back: `narrow(0, 1, ..)` (an offset) and `.t()` (swapped strides).
    let (a, b) = (shape[rank - 2], shape[rank - 1]);
    let mut tshape = shape.to_vec();
    tshape.swap(rank - 2, rank - 1);
    let outer: usize = shape[..rank - 2].iter().product();
    let mut tvals = Vec::with_capacity(vals.len());
    for o in 0..outer {
        let m = &vals[o * a * b..(o + 1) * a * b];
        for j in 0..b {
            for i in 0..a {
                tvals.push(m[i * b + j]);
            }
        }
    }
    let slab = vals.len() / tshape[0];
    let mut buf = vec![gap; slab];
    buf.extend_from_slice(&tvals);
    let mut bshape = tshape.clone();
    bshape[0] += 1;
    let t = host(buf, &bshape)?.narrow(0, 1, tshape[0])?.t()?;
    debug_assert_eq!(t.shape(), shape);
    Ok(t)
}

fn multi_index(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        if shape[d] > 0 {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
    }
    idx
}

impl<'a> Run<'a> {
    fn float_dtype(&self) -> DType {
        match self.mode {
            Mode::F32 => DType::F32,
            _ => DType::F64,
        }
    }

    fn p(&self, key: &str) -> &'a Json {
        self.case.param(key)
    }

    fn opt_p(&self, key: &str) -> Option<&'a Json> {
        self.case.params().get(key).filter(|j| !j.is_null())
    }

    fn pair(&self, key: &str) -> [usize; 2] {
        self.p(key).usize2()
    }

    fn axis(&self) -> isize {
        self.p("axis").as_i64() as isize
    }

    /// An input in the mode's float dtype (floats) or its own dtype (indices, masks).
    fn input(&self, name: &str) -> R<T> {
        let arr = self.case.get(name);
        let dtype = if arr.is_float() {
            self.float_dtype()
        } else {
            dtype_of(arr)
        };
        self.input_as(name, dtype)
    }

    fn input_as(&self, name: &str, dtype: DType) -> R<T> {
        let arr = self.case.get(name);
        make_tensor(&arr.to_f64(), &arr.shape, dtype, self.mode == Mode::Strided)
    }

    fn opt_input(&self, name: &str) -> R<Option<T>> {
        if self.case.has(name) {
            Ok(Some(self.input(name)?))
        } else {
            Ok(None)
        }
    }

    /// Inputs `x0, x1, .., x{n-1}`.
    fn inputs_n(&self, n: usize) -> R<Vec<T>> {
        (0..n).map(|i| self.input(&format!("x{i}"))).collect()
    }

    fn fail(&self, msg: String) {
        self.errors.borrow_mut().push(msg);
    }

    /// Compares an op's result with the stored tensor `name`, recording any mismatch.
    fn check(&self, name: &str, got: Result<T, Error>) {
        match got {
            Err(e) => self.fail(format!("{name}: op returned error: {e}")),
            Ok(t) => {
                if let Err(e) = self.compare(name, &t) {
                    self.fail(format!("{name}: {e}"));
                }
            }
        }
    }

    /// Compares a computed tensor with reference values not stored under a key.
    fn check_values(&self, name: &str, got: Result<T, Error>, want: &Array, vals: &[f64]) {
        match got {
            Err(e) => self.fail(format!("{name}: op returned error: {e}")),
            Ok(t) => {
                if let Err(e) = self.compare_float(&t, &want.shape, vals) {
                    self.fail(format!("{name}: {e}"));
                }
            }
        }
    }

    fn compare(&self, name: &str, got: &T) -> Result<(), String> {
        let want = self.case.get(name);
        match want.dtype.as_str() {
            "F64" => self.compare_float(got, &want.shape, &want.to_f64()),
            "I64" | "U8" | "F32" | "F16" | "BF16" => compare_exact(got, want),
            d => Err(format!("unsupported reference dtype {d}")),
        }
    }

    fn compare_float(&self, got: &T, shape: &[usize], want: &[f64]) -> Result<(), String> {
        if got.shape() != shape {
            return Err(format!("shape {:?}, want {:?}", got.shape(), shape));
        }
        if got.dtype() != self.float_dtype() {
            return Err(format!(
                "dtype {}, want {}",
                got.dtype(),
                self.float_dtype()
            ));
        }
        let g = got.to_f64_vec().map_err(|e| e.to_string())?;
        let max_abs = want
            .iter()
            .filter(|v| v.is_finite())
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let tol = |w: f64| match self.mode {
            Mode::F32 => 1e-5 * max_abs + 1e-6,
            _ => 1e-10 * w.abs() + 1e-12 * max_abs + 1e-13,
        };
        let mut bad = Vec::new();
        for (i, (&gv, &wv)) in g.iter().zip(want).enumerate() {
            let ok = if wv.is_nan() {
                gv.is_nan()
            } else if wv.is_infinite() {
                gv == wv
            } else {
                (gv - wv).abs() <= tol(wv)
            };
            if !ok {
                bad.push(i);
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        let (worst, _) = bad
            .iter()
            .map(|&i| (i, (g[i] - want[i]).abs()))
            .fold((bad[0], -1.0), |a, b| if b.1 > a.1 { b } else { a });
        let show = |i: usize| {
            format!(
                "element {i} {:?}: got {:.17e}, want {:.17e} (|diff| {:.3e}, tol {:.3e})",
                multi_index(i, shape),
                g[i],
                want[i],
                (g[i] - want[i]).abs(),
                tol(want[i])
            )
        };
        let mut msg = format!(
            "{}/{} elements differ; first {}",
            bad.len(),
            g.len(),
            show(bad[0])
        );
        if worst != bad[0] {
            msg += &format!("; worst {}", show(worst));
        }
        Err(msg)
    }
}

fn dtype_of(arr: &Array) -> DType {
    match arr.dtype.as_str() {
        "F64" => DType::F64,
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "I64" => DType::I64,
        "U8" | "BOOL" => DType::U8,
        d => panic!("{}: unsupported dtype {d}", arr.key),
    }
}

/// Exact comparison (same dtype, same bits after widening to f64; NaN equals NaN).
fn compare_exact(got: &T, want: &Array) -> Result<(), String> {
    if got.shape() != want.shape.as_slice() {
        return Err(format!("shape {:?}, want {:?}", got.shape(), want.shape));
    }
    if got.dtype() != dtype_of(want) {
        return Err(format!("dtype {}, want {}", got.dtype(), want.dtype));
    }
    let g = got.to_f64_vec().map_err(|e| e.to_string())?;
    let w = want.to_f64();
    let same = |a: f64, b: f64| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    let bad: Vec<usize> = (0..w.len()).filter(|&i| !same(g[i], w[i])).collect();
    match bad.first() {
        None => Ok(()),
        Some(&i) => Err(format!(
            "{}/{} elements differ (exact); first element {i} {:?}: got {:e}, want {:e}",
            bad.len(),
            w.len(),
            multi_index(i, &want.shape),
            g[i],
            w[i]
        )),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic".into()
    }
}

/// Runs `f` on every case whose op is `op`, in each of `modes`; panics listing all failures.
fn run_op(op: &str, modes: &[Mode], f: impl Fn(&Run) -> R) {
    let cases = fx().cases_with_op(op);
    assert!(!cases.is_empty(), "no fixture case has op {op:?}");
    let mut failures = Vec::new();
    let mut runs = 0;
    for case in &cases {
        for &mode in modes {
            runs += 1;
            let run = Run {
                case,
                mode,
                errors: RefCell::new(Vec::new()),
            };
            let res = catch_unwind(AssertUnwindSafe(|| f(&run)));
            let mut errs = run.errors.into_inner();
            match res {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errs.push(format!("error: {e}")),
                Err(p) => errs.push(format!("panicked: {}", panic_message(&*p))),
            }
            for e in errs {
                failures.push(format!("{} [{mode:?}]: {e}", case.name));
            }
        }
    }
    if !failures.is_empty() {
        panic!(
            "{op}: {} failure(s) over {runs} case-mode runs of {} cases:\n  {}",
            failures.len(),
            cases.len(),
            failures.join("\n  ")
        );
    }
}

/// Every op name the file uses, so that a new op family in the generator without a test here
/// fails `every_case_has_a_test`.
const TESTED_OPS: &[&str] = &[
    "unary",
    "binary",
    "compare",
    "where",
    "reduce",
    "argmax",
    "argmin",
    "matmul",
    "softmax",
    "log_softmax",
    "layer_norm",
    "batch_norm_train",
    "batch_norm_eval",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "index_select",
    "gather",
    "scatter_add",
    "cat",
    "stack",
    "split",
    "chunk",
    "pad",
    "interpolate_bicubic",
    "cast",
];

// ---------------------------------------------------------------------------------- file

#[test]
fn fixture_file_is_well_formed() {
    let fx = fx();
    assert_eq!(
        fx.metadata().get("_format").map(String::as_str),
        Some("tessera-fixtures-v1")
    );
    let names = fx.case_names();
    assert!(names.len() > 100, "only {} cases", names.len());
    for n in &names {
        let c = fx.case(n);
        assert!(c.op().is_some(), "{n}: no op in metadata");
        for g in c.grad_inputs() {
            assert!(c.has(&format!("grad_{g}")), "{n}: grads lists {g}");
        }
    }
    // A value the generator writes literally.
    let x = fx.get("cast_f64.x").to_f64();
    assert_eq!(&x[..4], &[0.0, -0.0, 1.0, -1.0]);
}

#[test]
fn every_case_has_a_test() {
    for n in fx().case_names() {
        let c = fx().case(&n);
        let op = c.op().unwrap();
        assert!(TESTED_OPS.contains(&op), "{n}: op {op:?} has no test");
    }
}

#[test]
fn strided_inputs_are_really_strided() {
    let v: Vec<f64> = (0..24).map(|i| i as f64).collect();
    for shape in [&[24][..], &[4, 6], &[2, 3, 4]] {
        let t = make_tensor(&v, shape, DType::F64, true).unwrap();
        assert!(!t.is_contiguous(), "{shape:?}");
        assert_eq!(t.shape(), shape);
        assert_eq!(t.to_f64_vec().unwrap(), v, "{shape:?}");
    }
}

// ---------------------------------------------------------------------------------- elementwise

#[test]
fn unary() {
    run_op("unary", ALL_MODES, |r| {
        let x = r.input("x")?;
        let y = match r.p("fn").as_str() {
            "neg" => x.neg(),
            "abs" => x.abs(),
            "sign" => x.sign(),
            "exp" => x.exp(),
            "log" => x.log(),
            "sqrt" => x.sqrt(),
            "rsqrt" => x.rsqrt(),
            "recip" => x.recip(),
            "square" => x.square(),
            "tanh" => x.tanh(),
            "erf" => x.erf(),
            "sigmoid" => x.sigmoid(),
            "relu" => x.relu(),
            "gelu" => x.gelu(),
            "powf" => x.powf(r.p("p").as_f64()),
            f => return Err(format!("unknown unary fn {f}").into()),
        };
        r.check("out", y);
        Ok(())
    });
}

#[test]
fn binary() {
    run_op("binary", ALL_MODES, |r| {
        let (a, b) = (r.input("a")?, r.input("b")?);
        let y = match r.p("fn").as_str() {
            "add" => a.add(&b),
            "sub" => a.sub(&b),
            "mul" => a.mul(&b),
            "div" => a.div(&b),
            "maximum" => a.maximum(&b),
            "minimum" => a.minimum(&b),
            "pow" => a.pow(&b),
            f => return Err(format!("unknown binary fn {f}").into()),
        };
        r.check("out", y);
        Ok(())
    });
}

#[test]
fn compare() {
    run_op("compare", ALL_MODES, |r| {
        let (a, b) = (r.input("a")?, r.input("b")?);
        let y = match r.p("fn").as_str() {
            "eq" => a.eq(&b),
            "ne" => a.ne(&b),
            "lt" => a.lt(&b),
            "le" => a.le(&b),
            "gt" => a.gt(&b),
            "ge" => a.ge(&b),
            f => return Err(format!("unknown comparison {f}").into()),
        };
        r.check("out", y);
        Ok(())
    });
}

#[test]
fn where_cond() {
    run_op("where", ALL_MODES, |r| {
        let (c, a, b) = (r.input("cond")?, r.input("a")?, r.input("b")?);
        r.check("out", c.where_cond(&a, &b));
        Ok(())
    });
}

#[test]
fn cast() {
    // Rounding is exact: compare bits. (No F32 mode: the inputs are the point.)
    run_op("cast", &[Mode::F64, Mode::Strided], |r| {
        let x = if r.case.has("x") {
            r.input("x")?
        } else {
            r.input_as("x_f32", DType::F32)?
        };
        for (name, dt) in [
            ("out_f32", DType::F32),
            ("out_f16", DType::F16),
            ("out_bf16", DType::BF16),
        ] {
            if r.case.has(name) {
                r.check(name, x.to_dtype(dt));
                // ... and back to f64, exactly.
                if let Ok(y) = x.to_dtype(dt) {
                    let want = r.case.get(name);
                    let back = y.to_dtype(DType::F64);
                    match back.and_then(|b| b.to_f64_vec()) {
                        Ok(v)
                            if v.iter().zip(want.to_f64()).all(|(a, b)| {
                                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
                            }) => {}
                        Ok(_) => r.fail(format!("{name}: widening back to F64 changed values")),
                        Err(e) => r.fail(format!("{name}: widening back to F64: {e}")),
                    }
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------- reductions

fn axes(r: &Run) -> Vec<isize> {
    r.p("axes")
        .i64_vec()
        .into_iter()
        .map(|a| a as isize)
        .collect()
}

#[test]
fn reduce() {
    run_op("reduce", ALL_MODES, |r| {
        let x = r.input("x")?;
        let (ax, keep) = (axes(r), r.p("keepdim").as_bool());
        let y = match r.p("fn").as_str() {
            "sum" => x.sum(&ax, keep),
            "mean" => x.mean(&ax, keep),
            "max" => x.max(&ax, keep),
            "min" => x.min(&ax, keep),
            "var" => x.var(&ax, r.p("correction").as_usize(), keep),
            f => return Err(format!("unknown reduction {f}").into()),
        };
        r.check("out", y);
        Ok(())
    });
}

#[test]
fn argmax() {
    run_op("argmax", ALL_MODES, |r| {
        let x = r.input("x")?;
        r.check("out", x.argmax(r.axis(), r.p("keepdim").as_bool()));
        Ok(())
    });
}

#[test]
fn argmin() {
    run_op("argmin", ALL_MODES, |r| {
        let x = r.input("x")?;
        r.check("out", x.argmin(r.axis(), r.p("keepdim").as_bool()));
        Ok(())
    });
}

// ---------------------------------------------------------------------------------- linear algebra, normalization

#[test]
fn matmul() {
    run_op("matmul", ALL_MODES, |r| {
        let (a, b) = (r.input("a")?, r.input("b")?);
        r.check("out", a.matmul(&b));
        Ok(())
    });
}

#[test]
fn softmax() {
    run_op("softmax", ALL_MODES, |r| {
        r.check("out", r.input("x")?.softmax(r.axis()));
        Ok(())
    });
}

#[test]
fn log_softmax() {
    run_op("log_softmax", ALL_MODES, |r| {
        r.check("out", r.input("x")?.log_softmax(r.axis()));
        Ok(())
    });
}

#[test]
fn layer_norm() {
    run_op("layer_norm", ALL_MODES, |r| {
        let x = r.input("x")?;
        let (w, b) = (r.opt_input("weight")?, r.opt_input("bias")?);
        let ns = r.p("normalized_shape").usize_vec();
        r.check(
            "out",
            x.layer_norm(&ns, w.as_ref(), b.as_ref(), r.p("eps").as_f64()),
        );
        Ok(())
    });
}

#[test]
fn batch_norm_train() {
    run_op("batch_norm_train", ALL_MODES, |r| {
        let x = r.input("x")?;
        let (w, b) = (r.opt_input("weight")?, r.opt_input("bias")?);
        let eps = r.p("eps").as_f64();
        match x.batch_norm_train(w.as_ref(), b.as_ref(), eps) {
            Err(e) => r.fail(format!("op returned error: {e}")),
            Ok(o) => {
                r.check("out", Ok(o.output));
                r.check("mean", Ok(o.mean));
                r.check("var", Ok(o.var));
                let var = r.case.get("var");
                let rstd: Vec<f64> = var
                    .to_f64()
                    .iter()
                    .map(|v| 1.0 / (v + eps).sqrt())
                    .collect();
                r.check_values("rstd", Ok(o.rstd), var, &rstd);
            }
        }
        Ok(())
    });
}

#[test]
fn batch_norm_eval() {
    run_op("batch_norm_eval", ALL_MODES, |r| {
        let x = r.input("x")?;
        let (m, v) = (r.input("running_mean")?, r.input("running_var")?);
        let (w, b) = (r.opt_input("weight")?, r.opt_input("bias")?);
        r.check(
            "out",
            x.batch_norm_eval(&m, &v, w.as_ref(), b.as_ref(), r.p("eps").as_f64()),
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------- images

#[test]
fn conv2d() {
    run_op("conv2d", ALL_MODES, |r| {
        let (x, w, b) = (r.input("x")?, r.input("weight")?, r.opt_input("bias")?);
        let o = ConvOptions {
            stride: r.pair("stride"),
            padding: r.pair("padding"),
            dilation: r.pair("dilation"),
            groups: r.p("groups").as_usize(),
        };
        r.check("out", x.conv2d(&w, b.as_ref(), &o));
        let p = x.conv2d_params(w.shape(), &o)?;
        let go = r.input("grad_out")?;
        r.check("grad_x", go.conv2d_backward_input(&w, &p));
        r.check("grad_weight", go.conv2d_backward_weight(&x, &p));
        Ok(())
    });
}

fn pool_options(r: &Run) -> Pool2dOptions {
    Pool2dOptions {
        kernel: r.pair("kernel"),
        stride: r.pair("stride"),
        padding: r.pair("padding"),
        dilation: r.opt_p("dilation").map_or([1, 1], Json::usize2),
        count_include_pad: r.opt_p("count_include_pad").is_none_or(Json::as_bool),
    }
}

#[test]
fn max_pool2d() {
    run_op("max_pool2d", ALL_MODES, |r| {
        let x = r.input("x")?;
        match x.max_pool2d(&pool_options(r)) {
            Err(e) => r.fail(format!("op returned error: {e}")),
            Ok((v, i)) => {
                r.check("out", Ok(v));
                r.check("indices", Ok(i));
            }
        }
        // The backward product from the reference indices, independent of the forward.
        let (go, idx) = (r.input("grad_out")?, r.input("indices")?);
        let hw = [x.shape()[2], x.shape()[3]];
        r.check("grad_x", go.max_pool2d_backward(&idx, hw));
        Ok(())
    });
}

#[test]
fn avg_pool2d() {
    run_op("avg_pool2d", ALL_MODES, |r| {
        let x = r.input("x")?;
        let o = pool_options(r);
        r.check("out", x.avg_pool2d(&o));
        let p = x.pool2d_params(&o)?;
        r.check("grad_x", r.input("grad_out")?.avg_pool2d_backward(&p));
        Ok(())
    });
}

#[test]
fn adaptive_avg_pool2d() {
    run_op("adaptive_avg_pool2d", ALL_MODES, |r| {
        let x = r.input("x")?;
        r.check("out", x.adaptive_avg_pool2d(r.pair("output_size")));
        let hw = [x.shape()[2], x.shape()[3]];
        r.check(
            "grad_x",
            r.input("grad_out")?.adaptive_avg_pool2d_backward(hw),
        );
        Ok(())
    });
}

#[test]
fn interpolate_bicubic() {
    run_op("interpolate_bicubic", ALL_MODES, |r| {
        let x = r.input("x")?;
        let size = r.opt_p("size").map(Json::usize2);
        let scale = r.opt_p("scale_factor").map(Json::f64_2);
        let ac = r.p("align_corners").as_bool();
        r.check("out", x.interpolate_bicubic(size, scale, ac));
        let p = x.resize_params(size, scale, ac)?;
        r.check(
            "grad_x",
            r.input("grad_out")?.interpolate_bicubic_backward(&p),
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------- indexing

#[test]
fn index_select() {
    run_op("index_select", ALL_MODES, |r| {
        let (x, i) = (r.input("x")?, r.input("index")?);
        r.check("out", x.index_select(r.axis(), &i));
        Ok(())
    });
}

#[test]
fn gather() {
    run_op("gather", ALL_MODES, |r| {
        let (x, i) = (r.input("x")?, r.input("index")?);
        r.check("out", x.gather(r.axis(), &i));
        // Its gradient is a scatter-add of the output gradient into zeros.
        let go = r.input("grad_out")?;
        r.check("grad_x", x.zeros_like()?.scatter_add(r.axis(), &i, &go));
        Ok(())
    });
}

#[test]
fn scatter_add() {
    run_op("scatter_add", ALL_MODES, |r| {
        let (x, i, s) = (r.input("x")?, r.input("index")?, r.input("src")?);
        r.check("out", x.scatter_add(r.axis(), &i, &s));
        // The source's gradient gathers the output gradient.
        r.check("grad_src", r.input("grad_out")?.gather(r.axis(), &i));
        Ok(())
    });
}

// ---------------------------------------------------------------------------------- joining, splitting, padding

#[test]
fn cat() {
    run_op("cat", ALL_MODES, |r| {
        let xs = r.inputs_n(r.p("n").as_usize())?;
        r.check("out", T::cat(&xs, r.axis()));
        Ok(())
    });
}

#[test]
fn stack() {
    run_op("stack", ALL_MODES, |r| {
        let xs = r.inputs_n(r.p("n").as_usize())?;
        r.check("out", T::stack(&xs, r.axis()));
        Ok(())
    });
}

fn check_pieces(r: &Run, pieces: Result<Vec<T>, Error>) {
    let n = r.p("n").as_usize();
    match pieces {
        Err(e) => r.fail(format!("op returned error: {e}")),
        Ok(v) if v.len() != n => r.fail(format!(
            "{} pieces of shapes {:?}, want {n}",
            v.len(),
            v.iter().map(|t| t.shape().to_vec()).collect::<Vec<_>>()
        )),
        Ok(v) => {
            for (i, t) in v.into_iter().enumerate() {
                r.check(&format!("out{i}"), Ok(t));
            }
        }
    }
}

#[test]
fn split() {
    run_op("split", ALL_MODES, |r| {
        let x = r.input("x")?;
        let pieces = match r.opt_p("size") {
            Some(s) => x.split(s.as_usize(), r.axis()),
            None => x.split_sizes(&r.p("sizes").usize_vec(), r.axis()),
        };
        check_pieces(r, pieces);
        Ok(())
    });
}

#[test]
fn chunk() {
    run_op("chunk", ALL_MODES, |r| {
        let x = r.input("x")?;
        check_pieces(r, x.chunk(r.p("chunks").as_usize(), r.axis()));
        Ok(())
    });
}

#[test]
fn pad() {
    run_op("pad", ALL_MODES, |r| {
        let x = r.input("x")?;
        r.check(
            "out",
            x.pad(&r.p("pads").usize_vec(), r.p("value").as_f64()),
        );
        Ok(())
    });
}
