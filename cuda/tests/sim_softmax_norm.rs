//! Fused softmax / log-softmax (and backward), layer norm (and backward) and batch norm on
//! the shim device against the CPU reference: every float dtype, every axis, warp / block /
//! column kernels, strided views, masked and NaN rows, and the kit's families and properties.
#![cfg(feature = "sim")]

mod common;
use common::{lcg, make, FLOATS};
use tessera_cuda::Cuda;
use tessera_tensor::backend::composite;
use tessera_tensor::{Backend, Cpu, DType, Tensor};
use tessera_testkit::ToleranceTable;

fn data(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    lcg(seed)
        .take(n)
        .map(|r| ((r % 2001) as f64 / 1000.0 - 1.0) * scale)
        .collect()
}

fn is_half(dt: DType) -> bool {
    matches!(dt, DType::F16 | DType::BF16)
}

fn tol(dt: DType) -> f64 {
    match dt {
        DType::F64 => 1e-11,
        DType::F32 => 2e-5,
        DType::F16 => 1e-2,
        _ => 5e-2,
    }
}

fn close(what: &str, e: &Tensor<Cpu>, a: &Tensor<Cuda>, t: f64) {
    assert_eq!(e.shape(), a.shape(), "{what}");
    assert_eq!(e.dtype(), a.dtype(), "{what}");
    let (ev, av) = (e.to_f64_vec().unwrap(), a.to_f64_vec().unwrap());
    for (i, (x, y)) in ev.iter().zip(&av).enumerate() {
        let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= t * (1.0 + x.abs());
        assert!(ok, "{what} at {i}: cpu {x} vs cuda {y}");
    }
}

/// A fresh pair of tensors, optionally transposed (dims 0 and last) to get strided rows.
fn pair(
    v: &[f64],
    shape: &[usize],
    dt: DType,
    transpose: bool,
    dev: &Cuda,
) -> (Tensor<Cpu>, Tensor<Cuda>) {
    let (c, d) = (make(v, shape, dt, &Cpu), make(v, shape, dt, dev));
    if transpose {
        let last = shape.len() as isize - 1;
        (c.transpose(0, last).unwrap(), d.transpose(0, last).unwrap())
    } else {
        (c, d)
    }
}

#[test]
fn softmax_every_axis_dtype_and_kernel() {
    let dev = Cuda::sim().unwrap();
    // warp rows, block rows (> 1024), column rows (axis 0 of a contiguous matrix)
    let shapes: [&[usize]; 4] = [&[3, 4, 5], &[4, 1500], &[1300, 3], &[2, 1, 7]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let v = data(n, n as u64, 8.0);
        for dt in FLOATS {
            for tr in [false, true] {
                let (c, d) = pair(&v, shape, dt, tr, &dev);
                for axis in 0..shape.len() {
                    let what = format!("{shape:?} {dt:?} t={tr} axis {axis}");
                    let a = axis as isize;
                    close(
                        &format!("softmax {what}"),
                        &c.softmax(a).unwrap(),
                        &d.softmax(a).unwrap(),
                        tol(dt),
                    );
                    close(
                        &format!("log_softmax {what}"),
                        &c.log_softmax(a).unwrap(),
                        &d.log_softmax(a).unwrap(),
                        tol(dt),
                    );
                    // backward against the composite on the CPU
                    let g = data(n, 7, 1.0);
                    let (gc, gd) = pair(&g, c.shape(), dt, false, &dev);
                    let (yc, yd) = (c.softmax(a).unwrap(), d.softmax(a).unwrap());
                    let e = composite::softmax_backward(&yc, &gc, axis).unwrap();
                    let r = Cuda::softmax_backward(&dev, &yd, &gd, axis).unwrap();
                    close(&format!("softmax_backward {what}"), &e, &r, tol(dt) * 2.0);
                    let (yc, yd) = (c.log_softmax(a).unwrap(), d.log_softmax(a).unwrap());
                    let e = composite::log_softmax_backward(&yc, &gc, axis).unwrap();
                    let r = Cuda::log_softmax_backward(&dev, &yd, &gd, axis).unwrap();
                    close(
                        &format!("log_softmax_backward {what}"),
                        &e,
                        &r,
                        tol(dt) * 2.0,
                    );
                }
            }
        }
    }
}

#[test]
fn softmax_masked_nan_large_and_empty() {
    let dev = Cuda::sim().unwrap();
    let (inf, nan) = (f64::INFINITY, f64::NAN);
    let v = [
        1000.0, 1001.0, -inf, 0.0, -inf, -inf, 1.0, nan, inf, 2.0, 3.0, -inf,
    ];
    for dt in FLOATS {
        let (c, d) = pair(&v, &[6, 2], dt, false, &dev);
        close(
            "softmax special",
            &c.softmax(1).unwrap(),
            &d.softmax(1).unwrap(),
            tol(dt),
        );
        close(
            "log_softmax special",
            &c.log_softmax(1).unwrap(),
            &d.log_softmax(1).unwrap(),
            tol(dt),
        );
        let (c, d) = pair(&v, &[2, 6], dt, false, &dev);
        close(
            "softmax special col",
            &c.softmax(0).unwrap(),
            &d.softmax(0).unwrap(),
            tol(dt),
        );
    }
    let e = Tensor::<Cuda>::zeros(&[0, 4], DType::F32, &dev).unwrap();
    assert_eq!(e.softmax(1).unwrap().shape(), &[0, 4]);
    let e = Tensor::<Cuda>::zeros(&[3, 0], DType::F32, &dev).unwrap();
    assert_eq!(e.log_softmax(1).unwrap().shape(), &[3, 0]);
}

#[test]
fn layer_norm_forward_backward_and_batch_norm() {
    let dev = Cuda::sim().unwrap();
    let cases: [(&[usize], usize); 4] = [
        (&[3, 4, 5], 1),
        (&[3, 4, 5], 2),
        (&[2, 1500], 1),
        (&[4, 6], 2),
    ];
    for (shape, k) in cases {
        let n: usize = shape.iter().product();
        let v = data(n, n as u64, 3.0);
        for dt in FLOATS {
            for tr in [false, true] {
                let (c, d) = pair(&v, shape, dt, tr, &dev);
                // transposing dims 0 and last changes the normalized shape; use the view's own
                let ns = c.shape()[c.rank() - k..].to_vec();
                let m: usize = ns.iter().product();
                let (wc, wd) = pair(&data(m, 3, 1.0), &ns, dt, false, &dev);
                let (bc, bd) = pair(&data(m, 4, 1.0), &ns, dt, false, &dev);
                let what = format!("{shape:?} k={k} {dt:?} t={tr}");
                for (w, b) in [(false, false), (true, true), (true, false)] {
                    // Halves: the CPU runs the composite in half precision, which loses more
                    // than the kernel's f32 math on near-constant rows; compare with f32 instead.
                    let up = |t: &Tensor<Cpu>| {
                        if is_half(dt) {
                            t.to_dtype(DType::F32).unwrap()
                        } else {
                            t.clone()
                        }
                    };
                    let (c32, w32, b32) = (up(&c), up(&wc), up(&bc));
                    let e = Cpu
                        .layer_norm(&c32, w.then_some(&w32), b.then_some(&b32), k, 1e-5)
                        .unwrap();
                    let down = |t: Tensor<Cpu>| t.to_dtype(dt).unwrap();
                    let e = (down(e.0), down(e.1), down(e.2));
                    let a = Cuda::layer_norm(&dev, &d, w.then_some(&wd), b.then_some(&bd), k, 1e-5)
                        .unwrap();
                    close(&format!("layer_norm y {what}"), &e.0, &a.0, tol(dt));
                    close(&format!("layer_norm mean {what}"), &e.1, &a.1, tol(dt));
                    close(&format!("layer_norm rstd {what}"), &e.2, &a.2, tol(dt));
                    if dt == DType::F32 || dt == DType::F64 {
                        let g = data(n, 9, 1.0);
                        let (gc, gd) = pair(&g, c.shape(), dt, false, &dev);
                        let eb = composite::layer_norm_backward(
                            &c,
                            &e.1,
                            &e.2,
                            w.then_some(&wc),
                            &gc,
                            k,
                        )
                        .unwrap();
                        let ab = Cuda::layer_norm_backward(
                            &dev,
                            &d,
                            &a.1,
                            &a.2,
                            w.then_some(&wd),
                            &gd,
                            k,
                        )
                        .unwrap();
                        close(
                            &format!("layer_norm_backward {what}"),
                            &eb,
                            &ab,
                            tol(dt) * 5.0,
                        );
                    }
                }
            }
        }
    }
    // batch norm apply over [n, c, h, w] and [n, c], strided input and parameters
    for shape in [&[2usize, 3, 4, 5][..], &[5, 3]] {
        let n: usize = shape.iter().product();
        for dt in FLOATS {
            let (c, d) = pair(&data(n, 11, 2.0), shape, dt, false, &dev);
            let (c, d) = (
                c.transpose(0, 1)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .transpose(0, 1)
                    .unwrap(),
                d.transpose(0, 1)
                    .unwrap()
                    .contiguous()
                    .unwrap()
                    .transpose(0, 1)
                    .unwrap(),
            );
            let p = |seed| pair(&data(6, seed, 1.0), &[6], dt, false, &dev);
            let sl = |t: (Tensor<Cpu>, Tensor<Cuda>)| {
                (
                    t.0.slice(0, 0, 6, 2).unwrap(),
                    t.1.slice(0, 0, 6, 2).unwrap(),
                )
            };
            let (m, r, w, b) = (sl(p(1)), sl(p(2)), sl(p(3)), sl(p(4)));
            for (hw, hb) in [(false, false), (true, true), (false, true)] {
                let e = composite::batch_norm_apply(
                    &c,
                    &m.0,
                    &r.0,
                    hw.then_some(&w.0),
                    hb.then_some(&b.0),
                )
                .unwrap();
                let a = Cuda::batch_norm_apply(
                    &dev,
                    &d,
                    &m.1,
                    &r.1,
                    hw.then_some(&w.1),
                    hb.then_some(&b.1),
                )
                .unwrap();
                close(
                    &format!("batch_norm_apply {shape:?} {dt:?}"),
                    &e,
                    &a,
                    tol(dt),
                );
            }
        }
    }
}

#[test]
fn conformance_families_and_properties() {
    let dev = Cuda::sim().unwrap();
    let tol = ToleranceTable::default();
    tessera_testkit::ops::check_family(&dev, "softmax", &tol).unwrap();
    tessera_testkit::ops::check_family(&dev, "norm", &tol).unwrap();
    tessera_testkit::props::check_softmax_norm_props(&dev, &tol, 64).unwrap();
}

#[test]
fn every_schedule_gives_the_same_results() {
    use tessera_cuda::driver::sim::{set_schedule, Schedule};
    let dev = Cuda::sim().unwrap();
    let v = data(4 * 1500, 5, 4.0);
    for s in [Schedule::Reverse, Schedule::Shuffled] {
        set_schedule(s);
        for (shape, axis) in [([4, 1500], 1), ([1500, 4], 0), ([1500, 4], 1)] {
            let (c, d) = pair(&v, &shape, DType::F32, false, &dev);
            close(
                "sched softmax",
                &c.softmax(axis).unwrap(),
                &d.softmax(axis).unwrap(),
                2e-5,
            );
            let e = Cpu.layer_norm(&c, None, None, 1, 1e-5).unwrap();
            let a = Cuda::layer_norm(&dev, &d, None, None, 1, 1e-5).unwrap();
            close("sched layer_norm", &e.0, &a.0, 2e-5);
        }
    }
    set_schedule(Schedule::Forward);
}
