//! index_select / gather / scatter_add on the shim against the CPU reference: every dtype,
//! every axis, strided data and index views, repeated and bad indices, empty tensors, and the
//! conformance kit's "index" family and indexing properties.
#![cfg(feature = "sim")]

mod common;
use common::{dev, lcg};
use tessera_cuda::Cuda;
use tessera_tensor::{Backend, Cpu, DType, Error, Tensor};
use tessera_testkit::{ops::check_family, props, ToleranceTable};

const ALL: [DType; 6] = [
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
    DType::I64,
    DType::U8,
];

/// Deterministic values: multiples of 0.25 in [-4, 4] (non-negative integers for u8), so
/// that sums are exact in every float dtype and the comparisons can be bit for bit.
fn values(n: usize, seed: u64, dtype: DType) -> Vec<f64> {
    lcg(seed)
        .take(n)
        .map(|r| {
            let k = r % 33;
            match dtype {
                DType::U8 => (k * 7) as f64,
                DType::I64 => k as f64 - 16.0,
                _ => k as f64 / 4.0 - 4.0,
            }
        })
        .collect()
}

fn pair(shape: &[usize], dtype: DType, seed: u64) -> (Tensor<Cuda>, Tensor<Cpu>) {
    let n = shape.iter().product();
    let v = values(n, seed, dtype);
    let g = Tensor::from_vec(v.clone(), shape, &dev())
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    let c = Tensor::from_vec(v, shape, &Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
    (g, c)
}

fn idx(v: &[i64], shape: &[usize]) -> (Tensor<Cuda>, Tensor<Cpu>) {
    (
        Tensor::from_vec(v.to_vec(), shape, &dev()).unwrap(),
        Tensor::from_vec(v.to_vec(), shape, &Cpu).unwrap(),
    )
}

fn same(g: &Tensor<Cuda>, c: &Tensor<Cpu>, what: &str) {
    assert_eq!(g.shape(), c.shape(), "{what}");
    assert_eq!(g.dtype(), c.dtype(), "{what}");
    let (a, b) = (g.to_f64_vec().unwrap(), c.to_f64_vec().unwrap());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what} at {i}: {x} vs {y}"
        );
    }
}

/// A named view of the data on both devices.
type View = (
    &'static str,
    fn(&Tensor<Cuda>) -> Tensor<Cuda>,
    fn(&Tensor<Cpu>) -> Tensor<Cpu>,
);

#[test]
fn index_select_matches_cpu_for_every_dtype_axis_and_view() {
    for dt in ALL {
        let (g, c) = pair(&[3, 4, 5], dt, 1);
        let views: [View; 3] = [
            ("contiguous", |t| t.clone(), |t| t.clone()),
            (
                "permuted",
                |t| t.permute(&[2, 0, 1]).unwrap(),
                |t| t.permute(&[2, 0, 1]).unwrap(),
            ),
            (
                "sliced",
                |t| t.slice(2, 1, 5, 2).unwrap(),
                |t| t.slice(2, 1, 5, 2).unwrap(),
            ),
        ];
        for (name, vg, vc) in views {
            let (xg, xc) = (vg(&g), vc(&c));
            for axis in 0..3 {
                let dim = xg.shape()[axis] as i64;
                let v: Vec<i64> = (0..7).map(|k| (k * 5 + 1) % dim).collect();
                let (ig, ic) = idx(&v, &[7]);
                let what = format!("{dt:?} {name} axis {axis}");
                same(
                    &xg.index_select(axis as isize, &ig).unwrap(),
                    &xc.index_select(axis as isize, &ic).unwrap(),
                    &what,
                );
                // A strided and a broadcast index view.
                let (sg, sc) = (ig.slice(0, 1, 7, 3).unwrap(), ic.slice(0, 1, 7, 3).unwrap());
                same(
                    &xg.index_select(axis as isize, &sg).unwrap(),
                    &xc.index_select(axis as isize, &sc).unwrap(),
                    &what,
                );
                let (bg, bc) = idx(&[dim - 1], &[1]);
                let (bg, bc) = (
                    bg.broadcast_to(&[4]).unwrap(),
                    bc.broadcast_to(&[4]).unwrap(),
                );
                same(
                    &xg.index_select(axis as isize, &bg).unwrap(),
                    &xc.index_select(axis as isize, &bc).unwrap(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn gather_matches_cpu_with_smaller_and_transposed_indices() {
    for dt in ALL {
        let (g, c) = pair(&[4, 6], dt, 2);
        for axis in 0..2 {
            let dim = g.shape()[axis] as i64;
            let v: Vec<i64> = (0..12).map(|k| (k * 7 + 3) % dim).collect();
            let (ig, ic) = idx(&v, &[3, 4]);
            let what = format!("{dt:?} axis {axis}");
            same(
                &g.gather(axis as isize, &ig).unwrap(),
                &c.gather(axis as isize, &ic).unwrap(),
                &what,
            );
            // Transposed data and index ([6, 4] data read as its transpose, [4, 3] index).
            let (tg, tc) = (g.t().unwrap(), c.t().unwrap());
            let (jg, jc) = (ig.t().unwrap(), ic.t().unwrap());
            let v2: Vec<i64> = (0..12)
                .map(|k| (k * 5 + 1) % tg.shape()[axis] as i64)
                .collect();
            let (kg, kc) = idx(&v2, &[4, 3]);
            same(
                &tg.gather(axis as isize, &kg).unwrap(),
                &tc.gather(axis as isize, &kc).unwrap(),
                &what,
            );
            if jg.shape()[1 - axis] <= tg.shape()[1 - axis]
                && v.iter().all(|&i| i < tg.shape()[axis] as i64)
            {
                same(
                    &tg.gather(axis as isize, &jg).unwrap(),
                    &tc.gather(axis as isize, &jc).unwrap(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn scatter_add_matches_cpu_for_every_dtype_with_collisions() {
    for dt in ALL {
        let (dg, dc) = pair(&[4, 5], dt, 3);
        let (sg, sc) = pair(&[6, 5], dt, 4);
        for axis in 0..2 {
            let dim = dg.shape()[axis] as i64;
            // Many collisions: every index one of two values.
            let v: Vec<i64> = (0..12).map(|k| (k % 2) * (dim - 1)).collect();
            let (ig, ic) = idx(&v, &[3, 4]);
            let what = format!("{dt:?} axis {axis}");
            same(
                &dg.scatter_add(axis as isize, &ig, &sg).unwrap(),
                &dc.scatter_add(axis as isize, &ic, &sc).unwrap(),
                &what,
            );
            // A transposed source and index.
            let (tg, tc) = (sg.t().unwrap(), sc.t().unwrap()); // [5, 6]
            let (jg, jc) = (ig.t().unwrap(), ic.t().unwrap()); // [4, 3]
            let bad_fit = jg.shape()[1 - axis] > dg.shape()[1 - axis];
            if !bad_fit {
                same(
                    &dg.scatter_add(axis as isize, &jg, &tg).unwrap(),
                    &dc.scatter_add(axis as isize, &jc, &tc).unwrap(),
                    &what,
                );
            }
        }
    }
}

#[test]
fn scatter_add_of_many_inexact_f32_values_is_close_to_cpu() {
    let n = 4096;
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 + 0.1)
        .collect();
    let iv: Vec<i64> = (0..n as i64).map(|i| i % 3).collect();
    let g = Tensor::zeros(&[3], DType::F32, &dev()).unwrap();
    let c = Tensor::zeros(&[3], DType::F32, &Cpu).unwrap();
    let (ig, ic) = idx(&iv, &[n]);
    let a = g
        .scatter_add(0, &ig, &Tensor::from_vec(v.clone(), &[n], &dev()).unwrap())
        .unwrap();
    let b = c
        .scatter_add(0, &ic, &Tensor::from_vec(v, &[n], &Cpu).unwrap())
        .unwrap();
    for (x, y) in a.to_f64_vec().unwrap().iter().zip(b.to_f64_vec().unwrap()) {
        assert!((x - y).abs() <= 1e-5 * y.abs(), "{x} vs {y}");
    }
}

#[test]
fn bad_indices_are_the_cpus_index_errors() {
    let (g, c) = pair(&[3, 4], DType::F32, 5);
    for bad in [4i64, -1, i64::MAX, i64::MIN] {
        let (ig, ic) = idx(&[0, bad, 1], &[3]);
        let e = g.index_select(1, &ig).unwrap_err();
        assert!(matches!(e, Error::Index { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            c.index_select(1, &ic).unwrap_err().to_string()
        );
        let (ig, ic) = idx(&[0, 1, bad, 2], &[1, 4]);
        let e = g.gather(0, &ig).unwrap_err();
        assert!(matches!(e, Error::Index { .. }), "{e}");
        assert_eq!(e.to_string(), c.gather(0, &ic).unwrap_err().to_string());
        let (ig, ic) = idx(&[bad, 1, 2, 0], &[1, 4]);
        let e = g.scatter_add(0, &ig, &g).unwrap_err();
        assert_eq!(
            e.to_string(),
            c.scatter_add(0, &ic, &c).unwrap_err().to_string()
        );
    }
    // Direct backend calls with bad shapes are errors, not out-of-bounds reads.
    let d = dev();
    let (ig, _) = idx(&[0, 1, 2, 3, 0], &[1, 5]);
    assert!(d
        .gather(&**g.storage(), g.layout(), 0, &**ig.storage(), ig.layout())
        .is_err());
    assert!(d
        .index_select(&**g.storage(), g.layout(), 2, &**ig.storage(), ig.layout())
        .is_err());
    let (fg, _) = pair(&[3], DType::F32, 1);
    assert!(d
        .index_select(&**g.storage(), g.layout(), 0, &**fg.storage(), fg.layout())
        .is_err());
}

#[test]
fn empty_indices_and_inputs() {
    for dt in [DType::F32, DType::I64] {
        let (g, c) = pair(&[3, 4], dt, 6);
        let (ig, ic) = idx(&[], &[0]);
        same(
            &g.index_select(0, &ig).unwrap(),
            &c.index_select(0, &ic).unwrap(),
            "empty index_select",
        );
        let (ig, ic) = idx(&[], &[0, 4]);
        same(
            &g.gather(0, &ig).unwrap(),
            &c.gather(0, &ic).unwrap(),
            "empty gather",
        );
        let (sg, sc) = pair(&[0, 4], dt, 7);
        same(
            &g.scatter_add(0, &ig, &sg).unwrap(),
            &c.scatter_add(0, &ic, &sc).unwrap(),
            "empty scatter",
        );
        let (eg, ec) = pair(&[0, 4], dt, 8);
        let (ig, ic) = idx(&[1, 3], &[2]);
        same(
            &eg.index_select(1, &ig).unwrap(),
            &ec.index_select(1, &ic).unwrap(),
            "empty input",
        );
    }
}

#[test]
fn index_family_and_props() {
    let d = dev();
    let tol = ToleranceTable::default();
    check_family(&d, "index", &tol).unwrap_or_else(|f| panic!("{f:?}"));
    props::check_indexing_props(&d, &tol, 24).unwrap_or_else(|f| panic!("{f:?}"));
}
