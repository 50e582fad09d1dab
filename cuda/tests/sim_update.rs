//! Fused optimizer steps (AdamW, SGD, EMA) and fused GELU / GELU backward on the shim device.
//! The updates must give exactly the bits of the default compositions
//! (`tessera_tensor::backend::update`) run on the same device, and of the CPU reference, for
//! every float dtype (the kernels round halves after every op as the composition's kernels
//! do), on contiguous and strided views; GELU is compared within tolerance with the composite
//! on the device and the CPU's fused kernel, plus the kit's "unary" family, unary properties
//! and a gradcheck of GELU in f64.
#![cfg(feature = "sim")]

use tessera_autograd::{gradcheck, GradcheckOptions};
mod common;
use common::{dev, lcg, make, FLOATS};
use tessera_cuda::Cuda;
use tessera_tensor::backend::{composite, update};
use tessera_tensor::{AdamWStep, Backend, Cpu, DType, SgdStep, Tensor};
use tessera_testkit::ToleranceTable;

/// The allocation counters are per device and the tests share one shim device: they run
/// one at a time so that `fused_updates_allocate_nothing` sees only its own allocations.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn data(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    lcg(seed)
        .take(n)
        .map(|r| ((r % 20001) as f64 / 10000.0 - 1.0) * scale)
        .collect()
}

/// A tensor of `shape` on `b`, or (strided) the transpose of a `[d1, d0]` tensor, so that
/// the result is a non-contiguous view that owns its storage alone.
fn param<B: Backend>(v: &[f64], shape: [usize; 2], dt: DType, b: &B, strided: bool) -> Tensor<B> {
    if strided {
        make(v, &[shape[1], shape[0]], dt, b).t().unwrap()
    } else {
        make(v, &shape, dt, b)
    }
}

/// Equal values bit for bit (as f64, which holds every float dtype exactly), NaN equal NaN.
fn same_bits<B: Backend, C: Backend>(what: &str, a: &Tensor<B>, b: &Tensor<C>) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (x, y) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let ok = (p.is_nan() && q.is_nan()) || p.to_bits() == q.to_bits();
        assert!(ok, "{what} at {i}: {p:e} vs {q:e}");
    }
}

fn close<B: Backend, C: Backend>(what: &str, a: &Tensor<B>, b: &Tensor<C>, tol: f64) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    let (x, y) = (a.to_f64_vec().unwrap(), b.to_f64_vec().unwrap());
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        let ok = (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= tol * (1.0 + q.abs());
        assert!(ok, "{what} at {i}: {p:e} vs {q:e}");
    }
}

/// Fresh copies (own storages) of the same values on `b`.
fn copies<B: Backend>(t: &[&Tensor<B>]) -> Vec<Tensor<B>> {
    t.iter().map(|x| x.copy().unwrap()).collect()
}

#[test]
fn adamw_matches_the_composition_and_the_cpu_bit_for_bit() {
    let _serial = serial();
    let d = dev();
    let shape = [7, 9];
    let n = 63;
    for dt in FLOATS {
        for (beta1, step, wd) in [(0.9, 1, 0.05), (0.9, 7, 0.0), (0.3, 3, 0.01)] {
            for strided in [false, true] {
                let s = AdamWStep {
                    lr: 1e-2,
                    weight_decay: wd,
                    beta1,
                    beta2: 0.999,
                    eps: 1e-8,
                    step,
                };
                let mut gv = data(n, 1, 1.0);
                gv[5] = 0.0;
                gv[6] = -0.0;
                let (pv, mv) = (data(n, 2, 1.0), data(n, 3, 0.1));
                let vv: Vec<f64> = data(n, 4, 0.1).iter().map(|x| x * x).collect();
                let what = format!("adamw {dt:?} beta1 {beta1} step {step} strided {strided}");
                // Device: fused vs default composition.
                let g = param(&gv, shape, dt, &d, strided);
                let mut fused = [&gv, &pv, &mv, &vv].map(|v| param(v, shape, dt, &d, strided));
                let [mut p2, mut m2, mut v2]: [Tensor<Cuda>; 3] =
                    copies(&[&fused[1], &fused[2], &fused[3]])
                        .try_into()
                        .unwrap();
                let [_, p, m, v] = &mut fused;
                p.adamw_update_(&g, m, v, &s).unwrap();
                update::adamw(&mut p2, &g, &mut m2, &mut v2, &s).unwrap();
                // CPU: its fused kernel (f32/f64) or default composition (halves).
                let gc = param(&gv, shape, dt, &Cpu, strided);
                let [mut pc, mut mc, mut vc] =
                    [&pv, &mv, &vv].map(|v| param(v, shape, dt, &Cpu, strided));
                pc.adamw_update_(&gc, &mut mc, &mut vc, &s).unwrap();
                for (name, a, b, c) in [
                    ("p", &*p, &p2, &pc),
                    ("m", &*m, &m2, &mc),
                    ("v", &*v, &v2, &vc),
                ] {
                    same_bits(&format!("{what} {name} vs composition"), a, b);
                    same_bits(&format!("{what} {name} vs cpu"), a, c);
                }
            }
        }
    }
}

#[test]
fn sgd_every_option_matches_the_composition_and_the_cpu_bit_for_bit() {
    let _serial = serial();
    let d = dev();
    let shape = [5, 11];
    let n = 55;
    let (gv, pv, bv) = (data(n, 5, 1.0), data(n, 6, 1.0), data(n, 7, 0.5));
    for dt in FLOATS {
        for wd in [0.0, 1e-2] {
            for buffer in [false, true] {
                for first_step in [false, true] {
                    for dampening in [0.0, 0.1] {
                        for nesterov in [false, true] {
                            for strided in [false, true] {
                                let s = SgdStep {
                                    lr: 0.05,
                                    weight_decay: wd,
                                    momentum: 0.9,
                                    dampening,
                                    nesterov,
                                    first_step,
                                };
                                let what = format!(
                                    "sgd {dt:?} wd {wd} buffer {buffer} first {first_step} damp {dampening} nesterov {nesterov} strided {strided}"
                                );
                                let g = param(&gv, shape, dt, &d, strided);
                                let mut p = param(&pv, shape, dt, &d, strided);
                                let mut b = param(&bv, shape, dt, &d, strided);
                                let (mut p2, mut b2) = (p.copy().unwrap(), b.copy().unwrap());
                                let gc = param(&gv, shape, dt, &Cpu, strided);
                                let mut pc = param(&pv, shape, dt, &Cpu, strided);
                                let mut bc = param(&bv, shape, dt, &Cpu, strided);
                                if buffer {
                                    p.sgd_update_(&g, Some(&mut b), &s).unwrap();
                                    update::sgd(&mut p2, &g, Some(&mut b2), &s).unwrap();
                                    pc.sgd_update_(&gc, Some(&mut bc), &s).unwrap();
                                    same_bits(&format!("{what} buf vs composition"), &b, &b2);
                                    same_bits(&format!("{what} buf vs cpu"), &b, &bc);
                                } else {
                                    p.sgd_update_(&g, None, &s).unwrap();
                                    update::sgd(&mut p2, &g, None, &s).unwrap();
                                    pc.sgd_update_(&gc, None, &s).unwrap();
                                }
                                same_bits(&format!("{what} p vs composition"), &p, &p2);
                                same_bits(&format!("{what} p vs cpu"), &p, &pc);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn ema_matches_the_composition_and_the_cpu_bit_for_bit() {
    let _serial = serial();
    let d = dev();
    let n = 1000; // several blocks of the grid-stride loop
    for dt in FLOATS {
        for momentum in [0.996, 0.5, 0.0] {
            for strided in [false, true] {
                let (tv, sv) = (data(n, 8, 3.0), data(n, 9, 3.0));
                let what = format!("ema {dt:?} momentum {momentum} strided {strided}");
                let src = param(&sv, [40, 25], dt, &d, strided);
                let mut t = param(&tv, [40, 25], dt, &d, strided);
                let mut t2 = t.copy().unwrap();
                t.ema_update_(&src, momentum).unwrap();
                update::ema(&mut t2, &src, momentum).unwrap();
                let mut tc = param(&tv, [40, 25], dt, &Cpu, strided);
                tc.ema_update_(&param(&sv, [40, 25], dt, &Cpu, strided), momentum)
                    .unwrap();
                same_bits(&format!("{what} vs composition"), &t, &t2);
                same_bits(&format!("{what} vs cpu"), &t, &tc);
            }
        }
    }
}

#[test]
fn updates_write_only_their_own_storage_and_handle_edge_cases() {
    let _serial = serial();
    let d = dev();
    let s = AdamWStep {
        lr: 0.1,
        weight_decay: 0.1,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        step: 2,
    };
    // A parameter whose storage another tensor shares is copied first (copy on write).
    let mut p = make(&data(12, 10, 1.0), &[3, 4], DType::F32, &d);
    let keep = p.clone();
    let before = keep.to_f64_vec().unwrap();
    let g = make(&data(12, 11, 1.0), &[3, 4], DType::F32, &d);
    let (mut m, mut v) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
    p.adamw_update_(&g, &mut m, &mut v, &s).unwrap();
    assert_eq!(keep.to_f64_vec().unwrap(), before);
    assert_ne!(p.to_f64_vec().unwrap(), before);
    // A broadcast gradient (stride 0) and a sliced gradient are read through their views.
    let row = make(&data(4, 12, 1.0), &[1, 4], DType::F64, &d);
    let gb = row.broadcast_to(&[3, 4]).unwrap();
    let mut p1 = make(&data(12, 13, 1.0), &[3, 4], DType::F64, &d);
    let mut p2 = p1.copy().unwrap();
    p1.ema_update_(&gb, 0.9).unwrap();
    update::ema(&mut p2, &gb, 0.9).unwrap();
    same_bits("ema broadcast source", &p1, &p2);
    let big = make(&data(60, 14, 1.0), &[6, 10], DType::F64, &d);
    let gs = big.slice(0, 1, 6, 2).unwrap().narrow(1, 3, 4).unwrap();
    let sgd = SgdStep {
        lr: 0.1,
        weight_decay: 0.01,
        momentum: 0.9,
        dampening: 0.0,
        nesterov: true,
        first_step: false,
    };
    let (mut b1, mut p1) = (
        make(&data(12, 15, 1.0), &[3, 4], DType::F64, &d),
        p2.copy().unwrap(),
    );
    let (mut b2, mut p3) = (b1.copy().unwrap(), p2.copy().unwrap());
    p1.sgd_update_(&gs, Some(&mut b1), &sgd).unwrap();
    update::sgd(&mut p3, &gs, Some(&mut b2), &sgd).unwrap();
    same_bits("sgd sliced grad p", &p1, &p3);
    same_bits("sgd sliced grad buf", &b1, &b2);
    // NaN and infinities propagate as in the composition.
    let gv = vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        1e30,
        -1e-30,
    ];
    for dt in FLOATS {
        let g = make(&gv, &[6], dt, &d);
        let mut p = make(&data(6, 16, 1.0), &[6], dt, &d);
        let (mut m, mut v) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
        let (mut p2, mut m2, mut v2) = (p.copy().unwrap(), m.copy().unwrap(), v.copy().unwrap());
        p.adamw_update_(&g, &mut m, &mut v, &s).unwrap();
        update::adamw(&mut p2, &g, &mut m2, &mut v2, &s).unwrap();
        same_bits(&format!("adamw non-finite {dt:?}"), &p, &p2);
        same_bits(&format!("adamw non-finite {dt:?} v"), &v, &v2);
    }
    // Empty and size-1 parameters.
    for shape in [&[0usize][..], &[2, 0], &[1, 1]] {
        let n: usize = shape.iter().product();
        let g = make(&data(n, 17, 1.0), shape, DType::F32, &d);
        let mut p = make(&data(n, 18, 1.0), shape, DType::F32, &d);
        let (mut m, mut v) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
        let mut p2 = p.copy().unwrap();
        p.adamw_update_(&g, &mut m, &mut v, &s).unwrap();
        p.ema_update_(&g, 0.9).unwrap();
        p.sgd_update_(&g, None, &sgd).unwrap();
        let (mut m2, mut v2) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
        update::adamw(&mut p2, &g, &mut m2, &mut v2, &s).unwrap();
        update::ema(&mut p2, &g, 0.9).unwrap();
        update::sgd(&mut p2, &g, None, &sgd).unwrap();
        same_bits(&format!("shape {shape:?}"), &p, &p2);
    }
    // Mismatched operands are errors, as on the CPU.
    let mut p = make(&[1.0, 2.0], &[2], DType::F32, &d);
    let g3 = make(&[1.0, 2.0, 3.0], &[3], DType::F32, &d);
    assert!(p.ema_update_(&g3, 0.9).is_err());
    assert!(p
        .ema_update_(&make(&[1.0, 2.0], &[2], DType::F64, &d), 0.9)
        .is_err());
}

/// GELU inputs: random values, extremes and non-finite values.
fn gelu_values(n: usize, seed: u64) -> Vec<f64> {
    let mut v = data(n, seed, 6.0);
    let special = [
        0.0,
        -0.0,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        40.0,
        -40.0,
        1e-8,
    ];
    v[..special.len()].copy_from_slice(&special);
    v
}

fn gelu_tol(dt: DType) -> f64 {
    match dt {
        DType::F64 => 1e-13,
        DType::F32 => 2e-6,
        DType::F16 => 4e-3,
        _ => 2e-2,
    }
}

#[test]
fn gelu_and_backward_match_the_composite_and_the_cpu() {
    let _serial = serial();
    let d = dev();
    let n = 6 * 50;
    let (xv, gv) = (gelu_values(n, 20), data(n, 21, 2.0));
    for dt in FLOATS {
        for view in 0..4 {
            let pick = |t: Tensor<Cuda>| -> Tensor<Cuda> { pick_view(t, view) };
            let x = pick(make(&xv, &[6, 50], dt, &d));
            let g = pick(
                make(&gv, &[6, 50], dt, &d)
                    .t()
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .t()
                    .unwrap(),
            );
            let xc = pick_view(make(&xv, &[6, 50], dt, &Cpu), view);
            let gc = pick_view(make(&gv, &[6, 50], dt, &Cpu), view);
            let what = format!("gelu {dt:?} view {view}");
            let y = x.gelu().unwrap();
            assert!(y.is_contiguous());
            close(
                &format!("{what} vs composite"),
                &y,
                &composite::gelu(&x).unwrap(),
                gelu_tol(dt),
            );
            close(
                &format!("{what} vs cpu"),
                &y,
                &xc.gelu().unwrap(),
                gelu_tol(dt),
            );
            let dx = x.gelu_backward(&g).unwrap();
            close(
                &format!("{what} backward vs composite"),
                &dx,
                &composite::gelu_backward(&x, &g).unwrap(),
                gelu_tol(dt),
            );
            close(
                &format!("{what} backward vs cpu"),
                &dx,
                &xc.gelu_backward(&gc).unwrap(),
                gelu_tol(dt),
            );
        }
    }
    // Empty and size-1 inputs; integer inputs are dtype errors.
    for shape in [&[0usize][..], &[3, 0], &[1, 1, 1]] {
        let n: usize = shape.iter().product();
        let x = make(&data(n, 22, 1.0), shape, DType::F32, &d);
        assert_eq!(x.gelu().unwrap().shape(), shape);
        close(
            "gelu size-1",
            &x.gelu().unwrap(),
            &composite::gelu(&x).unwrap(),
            2e-6,
        );
        assert_eq!(x.gelu_backward(&x).unwrap().shape(), shape);
    }
    let i = make(&[1.0, 2.0], &[2], DType::I64, &d);
    assert!(i.gelu().is_err());
    assert!(make(&[1.0], &[1], DType::F32, &d)
        .gelu_backward(&make(&[1.0, 2.0], &[2], DType::F32, &d))
        .is_err());
}

/// 0: contiguous, 1: transposed, 2: strided slice, 3: broadcast along a new leading dim.
fn pick_view<B: Backend>(t: Tensor<B>, view: usize) -> Tensor<B> {
    match view {
        0 => t,
        1 => t.t().unwrap(),
        2 => t.slice(1, 1, 50, 3).unwrap(),
        _ => t.narrow(0, 2, 1).unwrap().broadcast_to(&[3, 50]).unwrap(),
    }
}

#[test]
fn gelu_gradcheck_in_f64() {
    let _serial = serial();
    let d = dev();
    let x = make(&data(24, 23, 3.0), &[4, 6], DType::F64, &d);
    for input in [x.clone(), x.t().unwrap()] {
        gradcheck(|v| v[0].gelu(), &[input], &GradcheckOptions::default()).unwrap();
    }
}

#[test]
fn kit_unary_family_and_properties() {
    let _serial = serial();
    let d = dev();
    let tol = ToleranceTable::default();
    tessera_testkit::ops::check_family(&d, "unary", &tol).unwrap();
    tessera_testkit::props::check_unary_props(&d, &tol, 64).unwrap();
}

#[test]
fn fused_updates_allocate_nothing() {
    let _serial = serial();
    let d = dev();
    let s = AdamWStep {
        lr: 1e-3,
        weight_decay: 0.05,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        step: 4,
    };
    let g = make(&data(4096, 30, 1.0), &[64, 64], DType::F32, &d);
    let mut p = make(&data(4096, 31, 1.0), &[64, 64], DType::F32, &d);
    let (mut m, mut v) = (g.zeros_like().unwrap(), g.zeros_like().unwrap());
    let mut b = g.zeros_like().unwrap();
    let sgd = SgdStep {
        lr: 0.1,
        weight_decay: 0.01,
        momentum: 0.9,
        dampening: 0.1,
        nesterov: true,
        first_step: false,
    };
    d.reset_memory_stats();
    p.adamw_update_(&g, &mut m, &mut v, &s).unwrap();
    p.sgd_update_(&g, Some(&mut b), &sgd).unwrap();
    p.ema_update_(&g, 0.99).unwrap();
    let st = d.memory_stats();
    assert_eq!(
        (st.fresh, st.reused),
        (0, 0),
        "a fused update allocated temporaries"
    );
}

#[test]
fn sum_of_squares_over_several_tensors() {
    let _serial = serial();
    use tessera_cuda::ops::update::sum_of_squares;
    let d = dev();
    for dt in FLOATS {
        let a = make(&data(3000, 40, 2.0), &[30, 100], dt, &d);
        let b = make(&data(7, 41, 2.0), &[7], dt, &d);
        let c = make(&data(60, 42, 2.0), &[6, 10], dt, &d).t().unwrap(); // strided
        let e = make(&[], &[0, 4], dt, &d);
        let ts = [&a, &b, &c, &e];
        let want: f64 = ts
            .iter()
            .flat_map(|t| t.to_f64_vec().unwrap())
            .map(|x| x * x)
            .sum();
        let got = sum_of_squares(&d, &ts).unwrap();
        assert_eq!(got.shape(), &[] as &[usize]);
        assert_eq!(
            got.dtype(),
            if dt == DType::F64 {
                DType::F64
            } else {
                DType::F32
            }
        );
        let got = got.to_f64_vec().unwrap()[0];
        let tol = if dt == DType::F64 { 1e-12 } else { 1e-5 };
        assert!((got - want).abs() <= tol * want, "{dt:?}: {got} vs {want}");
    }
    assert_eq!(
        sum_of_squares(&d, &[]).unwrap().to_f64_vec().unwrap(),
        vec![0.0]
    );
    let (x, y) = (
        make(&[1.0], &[1], DType::F32, &d),
        make(&[1.0], &[1], DType::F64, &d),
    );
    assert!(sum_of_squares(&d, &[&x, &y]).is_err());
}
