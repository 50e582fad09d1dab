//! Gradients against PyTorch: every case of `tests/fixtures/tensor_ops.safetensors` that
//! stores `grad_out` is run through autograd in f64 (`Var::leaf` inputs,
//! `backward_with(grad_out)`), and each `grad_<input>` is compared with torch.autograd's
//! within `1e-9 * max|ref| + 1e-12`.
//!
//! Each case runs three ways: inputs and `grad_out` contiguous, transposed (dims reversed in
//! storage) and strided (a step-2 view behind an offset, NaN in the gaps). New cases in
//! `scripts/gen_fixtures.py` are picked up automatically; a new op family needs an arm in
//! [`run_op`] (and fails `every_differentiable_op_is_covered` until it has one). The
//! tanh-approximate GELU's cases live in `tests/fixtures/gelu_tanh.safetensors`
//! (`scripts/gen_gelu_tanh_fixtures.py`) and run the same way.

use crate::fixtures::{Array, Case, Fixtures, Json};
use crate::support::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use tessera::autograd::Var;
use tessera::tensor::{ConvOptions, Cpu, Pool2dOptions, Result, UnaryOp};

fn fx() -> &'static Fixtures {
    static FX: OnceLock<Fixtures> = OnceLock::new();
    FX.get_or_init(|| Fixtures::open("tensor_ops.safetensors"))
}

/// The tanh-approximate GELU cases (`tests/fixtures/gelu_tanh.safetensors`, written by
/// `scripts/gen_gelu_tanh_fixtures.py` in the same format, `op` `"unary"`).
fn fx_gelu_tanh() -> &'static Fixtures {
    static FX: OnceLock<Fixtures> = OnceLock::new();
    FX.get_or_init(|| Fixtures::open("gelu_tanh.safetensors"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Contiguous,
    Transposed,
    Strided,
}

const MODES: [Mode; 3] = [Mode::Contiguous, Mode::Transposed, Mode::Strided];

/// A stored array as a tensor: floats in F64 laid out as `mode` says, indices and masks
/// contiguous in their own dtype.
fn make(arr: &Array, mode: Mode) -> T {
    match arr.dtype.as_str() {
        "F64" => {
            let v = arr.to_f64();
            match mode {
                _ if arr.shape.is_empty() || v.is_empty() => tensor(v, &arr.shape),
                Mode::Contiguous => tensor(v, &arr.shape),
                Mode::Transposed if arr.shape.len() >= 2 => transposed(&v, &arr.shape),
                Mode::Transposed | Mode::Strided => strided(&v, &arr.shape),
            }
        }
        "I64" => indices(arr.to_i64(), &arr.shape),
        "U8" | "BOOL" => T::from_vec(arr.to_u8(), &arr.shape, &Cpu).unwrap(),
        d => panic!("{}: unexpected dtype {d}", arr.key),
    }
}

/// One case in one mode: the inputs named in `"grads"` are leaves, every other float input
/// a constant.
struct Run<'a> {
    case: &'a Case<'a>,
    mode: Mode,
    leaves: BTreeMap<String, V>,
}

impl<'a> Run<'a> {
    fn new(case: &'a Case<'a>, mode: Mode) -> Run<'a> {
        let leaves = case
            .grad_inputs()
            .into_iter()
            .map(|n| {
                let leaf = V::leaf(make(case.get(&n), mode));
                (n, leaf)
            })
            .collect();
        Run { case, mode, leaves }
    }

    /// The input `name` as a var (a leaf if it has a reference gradient).
    fn var(&self, name: &str) -> V {
        match self.leaves.get(name) {
            Some(v) => v.clone(),
            None => Var::constant(make(self.case.get(name), self.mode)),
        }
    }

    fn opt_var(&self, name: &str) -> Option<V> {
        self.case.has(name).then(|| self.var(name))
    }

    /// A non-differentiable tensor argument (indices, masks, running statistics).
    fn tensor(&self, name: &str) -> T {
        make(self.case.get(name), self.mode)
    }

    fn p(&self, key: &str) -> &'a Json {
        self.case.param(key)
    }

    fn opt_p(&self, key: &str) -> Option<&'a Json> {
        self.case.params().get(key).filter(|j| !j.is_null())
    }

    fn axis(&self) -> isize {
        self.p("axis").as_i64() as isize
    }

    fn pool_options(&self) -> Pool2dOptions {
        Pool2dOptions {
            kernel: self.p("kernel").usize2(),
            stride: self.p("stride").usize2(),
            padding: self.p("padding").usize2(),
            dilation: self.opt_p("dilation").map_or([1, 1], Json::usize2),
            count_include_pad: self.opt_p("count_include_pad").is_none_or(Json::as_bool),
        }
    }
}

/// The op of a case, on the run's vars.
fn run_op(r: &Run) -> Result<V> {
    let op = r.case.op().unwrap_or_default();
    Ok(match op {
        "unary" => {
            let x = r.var("x");
            match r.p("fn").as_str() {
                "neg" => x.neg()?,
                "abs" => x.abs()?,
                "sign" => x.unary(UnaryOp::Sign)?,
                "exp" => x.exp()?,
                "log" => x.log()?,
                "sqrt" => x.sqrt()?,
                "rsqrt" => x.rsqrt()?,
                "recip" => x.recip()?,
                "square" => x.square()?,
                "tanh" => x.tanh()?,
                "erf" => x.erf()?,
                "sigmoid" => x.sigmoid()?,
                "relu" => x.relu()?,
                "gelu" => x.gelu()?,
                "gelu_tanh" => x.gelu_tanh()?,
                "powf" => x.powf(r.p("p").as_f64())?,
                f => panic!("unknown unary fn {f}"),
            }
        }
        "binary" => {
            let (a, b) = (r.var("a"), r.var("b"));
            match r.p("fn").as_str() {
                "add" => a.add(&b)?,
                "sub" => a.sub(&b)?,
                "mul" => a.mul(&b)?,
                "div" => a.div(&b)?,
                "maximum" => a.maximum(&b)?,
                "minimum" => a.minimum(&b)?,
                "pow" => a.pow(&b)?,
                f => panic!("unknown binary fn {f}"),
            }
        }
        "where" => V::where_cond(&r.tensor("cond"), &r.var("a"), &r.var("b"))?,
        "reduce" => {
            let x = r.var("x");
            let axes: Vec<isize> = r.p("axes").i64_vec().iter().map(|&a| a as isize).collect();
            let keep = r.p("keepdim").as_bool();
            match r.p("fn").as_str() {
                "sum" => x.sum(&axes, keep)?,
                "mean" => x.mean(&axes, keep)?,
                "max" => x.max(&axes, keep)?,
                "min" => x.min(&axes, keep)?,
                "var" => x.var(&axes, r.p("correction").as_usize(), keep)?,
                f => panic!("unknown reduction {f}"),
            }
        }
        "matmul" => r.var("a").matmul(&r.var("b"))?,
        "softmax" => r.var("x").softmax(r.axis())?,
        "log_softmax" => r.var("x").log_softmax(r.axis())?,
        "layer_norm" => r.var("x").layer_norm(
            &r.p("normalized_shape").usize_vec(),
            r.opt_var("weight").as_ref(),
            r.opt_var("bias").as_ref(),
            r.p("eps").as_f64(),
        )?,
        "batch_norm_train" => {
            let (w, b) = (r.opt_var("weight"), r.opt_var("bias"));
            r.var("x")
                .batch_norm_train(w.as_ref(), b.as_ref(), r.p("eps").as_f64())?
                .0
        }
        "batch_norm_eval" => {
            let (w, b) = (r.opt_var("weight"), r.opt_var("bias"));
            r.var("x").batch_norm_eval(
                &r.tensor("running_mean"),
                &r.tensor("running_var"),
                w.as_ref(),
                b.as_ref(),
                r.p("eps").as_f64(),
            )?
        }
        "conv2d" => {
            let o = ConvOptions {
                stride: r.p("stride").usize2(),
                padding: r.p("padding").usize2(),
                dilation: r.p("dilation").usize2(),
                groups: r.p("groups").as_usize(),
            };
            let bias = r.opt_var("bias");
            r.var("x").conv2d(&r.var("weight"), bias.as_ref(), &o)?
        }
        "max_pool2d" => r.var("x").max_pool2d(&r.pool_options())?,
        "avg_pool2d" => r.var("x").avg_pool2d(&r.pool_options())?,
        "adaptive_avg_pool2d" => r
            .var("x")
            .adaptive_avg_pool2d(r.p("output_size").usize2())?,
        "interpolate_bicubic" => r.var("x").interpolate_bicubic(
            r.opt_p("size").map(Json::usize2),
            r.opt_p("scale_factor").map(Json::f64_2),
            r.p("align_corners").as_bool(),
        )?,
        "index_select" => r.var("x").index_select(r.axis(), &r.tensor("index"))?,
        "gather" => r.var("x").gather(r.axis(), &r.tensor("index"))?,
        "scatter_add" => r
            .var("x")
            .scatter_add(r.axis(), &r.tensor("index"), &r.var("src"))?,
        "cat" | "stack" => {
            let xs: Vec<V> = (0..r.p("n").as_usize())
                .map(|i| r.var(&format!("x{i}")))
                .collect();
            if op == "cat" {
                V::cat(&xs, r.axis())?
            } else {
                V::stack(&xs, r.axis())?
            }
        }
        "pad" => r
            .var("x")
            .pad(&r.p("pads").usize_vec(), r.p("value").as_f64())?,
        other => panic!("no gradient test for op {other:?}: add an arm to run_op"),
    })
}

/// Runs one case in one mode; returns its mismatches.
fn run_case(case: &Case, mode: Mode) -> Vec<String> {
    let r = Run::new(case, mode);
    let fail = |what: String| vec![format!("{} [{mode:?}]: {what}", case.name)];
    let out = match run_op(&r) {
        Ok(out) => out,
        Err(e) => return fail(format!("the op returned an error: {e}")),
    };
    let grad_out = make(case.get("grad_out"), mode);
    let grads = match out.backward_with(&grad_out) {
        Ok(g) => g,
        Err(e) => return fail(format!("backward returned an error: {e}")),
    };
    let mut errors = Vec::new();
    for (name, leaf) in &r.leaves {
        let want = case.get(&format!("grad_{name}"));
        let got = match grads.get(leaf) {
            Some(g) => g.clone(),
            // No gradient: the output does not depend on this input (e.g. sign).
            None => leaf.value().zeros_like().unwrap(),
        };
        if let Err(e) = compare(&got, want) {
            errors.extend(fail(format!("grad_{name}: {e}")));
        }
    }
    errors
}

/// `got` against the reference within `1e-9 * max|ref| + 1e-12`.
fn compare(got: &T, want: &Array) -> std::result::Result<(), String> {
    if got.shape() != want.shape.as_slice() {
        return Err(format!("shape {:?}, want {:?}", got.shape(), want.shape));
    }
    let g = got.to_f64_vec().map_err(|e| e.to_string())?;
    let w = want.to_f64();
    let max_abs = w.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let tol = 1e-9 * max_abs + 1e-12;
    let bad: Vec<usize> = (0..w.len())
        .filter(|&k| {
            let d = (g[k] - w[k]).abs();
            d.is_nan() || d > tol
        })
        .collect();
    match bad.first() {
        None => Ok(()),
        Some(&k) => Err(format!(
            "{}/{} elements differ; first at {:?}: got {:.17e}, want {:.17e} \
             (|diff| {:.3e} > tol {tol:.3e})",
            bad.len(),
            w.len(),
            unravel(k, &want.shape),
            g[k],
            w[k],
            (g[k] - w[k]).abs()
        )),
    }
}

/// Runs every differentiable case of `op` in every mode; panics listing all failures.
fn run_family(op: &str) {
    run_family_in(fx(), op)
}

/// [`run_family`] on the cases of another fixture file.
fn run_family_in(fx: &Fixtures, op: &str) {
    let cases: Vec<Case> = fx
        .cases_with_op(op)
        .into_iter()
        .filter(|c| c.has("grad_out"))
        .collect();
    assert!(
        !cases.is_empty(),
        "no differentiable fixture case has op {op:?}"
    );
    let failures: Vec<String> = cases
        .iter()
        .flat_map(|c| MODES.iter().flat_map(move |&m| run_case(c, m)))
        .collect();
    assert!(
        failures.is_empty(),
        "{op}: {} mismatch(es) against PyTorch over {} cases x {} layouts:\n  {}",
        failures.len(),
        cases.len(),
        MODES.len(),
        failures.join("\n  ")
    );
}

/// One test per op family; `OPS` lists the families [`run_op`] handles.
macro_rules! families {
    ($($test:ident => $op:literal,)*) => {
        const OPS: &[&str] = &[$($op),*];
        $(
            #[test]
            fn $test() {
                run_family($op);
            }
        )*
    };
}

families! {
    unary => "unary",
    binary => "binary",
    where_cond => "where",
    reduce => "reduce",
    matmul => "matmul",
    softmax => "softmax",
    log_softmax => "log_softmax",
    layer_norm => "layer_norm",
    batch_norm_train => "batch_norm_train",
    batch_norm_eval => "batch_norm_eval",
    conv2d => "conv2d",
    max_pool2d => "max_pool2d",
    avg_pool2d => "avg_pool2d",
    adaptive_avg_pool2d => "adaptive_avg_pool2d",
    interpolate_bicubic => "interpolate_bicubic",
    index_select => "index_select",
    gather => "gather",
    scatter_add => "scatter_add",
    cat => "cat",
    stack => "stack",
    pad => "pad",
}

/// The tanh-approximate GELU's gradient against PyTorch (its own fixture file).
#[test]
fn unary_gelu_tanh() {
    run_family_in(fx_gelu_tanh(), "unary");
}

/// Every op with a stored gradient has a test above, and every reference gradient belongs to
/// an input the case lists.
#[test]
fn every_differentiable_op_is_covered() {
    let mut seen = 0;
    for name in fx().case_names() {
        let case = fx().case(&name);
        if !case.has("grad_out") {
            continue;
        }
        seen += 1;
        let op = case.op().unwrap_or_default();
        assert!(OPS.contains(&op), "{name}: op {op:?} has no gradient test");
        let grads = case.grad_inputs();
        assert!(!grads.is_empty(), "{name}: grad_out but no \"grads\"");
        for g in grads {
            assert!(case.has(&format!("grad_{g}")), "{name}: no grad_{g}");
        }
    }
    assert!(seen >= 150, "only {seen} differentiable cases");
}
