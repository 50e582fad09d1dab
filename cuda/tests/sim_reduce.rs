//! Reductions on the shim device against the CPU reference: every op and dtype, every axis
//! set of small tensors, long rows (block and split paths), column reductions, strided views,
//! NaN, ties, empty and size-1 dims, and the conformance kit's "reduce" family and properties.
#![cfg(feature = "sim")]

use tessera_cuda::Cuda;
use tessera_tensor::{Backend, Cpu, DType, ReduceOp, Tensor};
use tessera_testkit::ToleranceTable;

const OPS: [ReduceOp; 5] = [
    ReduceOp::Sum,
    ReduceOp::Max,
    ReduceOp::Min,
    ReduceOp::ArgMax,
    ReduceOp::ArgMin,
];

fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % 2001) as f64 / 100.0 - 10.0
        })
        .collect()
}

fn make<B: Backend>(v: &[f64], shape: &[usize], dt: DType, b: &B) -> Tensor<B> {
    Tensor::from_vec(v.to_vec(), shape, b)
        .unwrap()
        .to_dtype(dt)
        .unwrap()
}

/// The views the checks take of a fresh tensor.
#[derive(Clone, Copy)]
enum View {
    Id,
    Permute201,
    SliceStep2,
    T,
    TT,
}

fn view<B: Backend>(t: Tensor<B>, v: View) -> Tensor<B> {
    match v {
        View::Id => t,
        View::Permute201 => t.permute(&[2, 0, 1]).unwrap(),
        View::SliceStep2 => t.slice(2, 0, 5, 2).unwrap(),
        View::T => t.t().unwrap(),
        View::TT => t.t().unwrap().t().unwrap(),
    }
}

/// Reduces the same view on both backends and compares (exact for max/min/arg* and ints).
fn check(what: &str, v: &[f64], shape: &[usize], dt: DType, vw: View, axes: &[isize]) {
    let dev = Cuda::sim().unwrap();
    let c = view(make(v, shape, dt, &Cpu), vw);
    let d = view(make(v, shape, dt, &dev), vw);
    for op in OPS {
        if (op != ReduceOp::Sum
            && c.shape()
                .iter()
                .enumerate()
                .any(|(i, &s)| s == 0 && axes.contains(&(i as isize))))
            || (matches!(op, ReduceOp::ArgMax | ReduceOp::ArgMin) && axes.len() != 1)
        {
            continue;
        }
        let e = c.reduce(op, axes, true).unwrap();
        let a = d.reduce(op, axes, true).unwrap();
        assert_eq!(e.shape(), a.shape(), "{what} {op:?}");
        assert_eq!(e.dtype(), a.dtype(), "{what} {op:?}");
        let (ev, av) = (e.to_f64_vec().unwrap(), a.to_f64_vec().unwrap());
        let tol = match (op, dt) {
            (ReduceOp::Sum, DType::F16) => 1e-2,
            (ReduceOp::Sum, DType::BF16) => 5e-2,
            (ReduceOp::Sum, DType::F32) => 1e-6,
            (ReduceOp::Sum, DType::F64) => 1e-12,
            _ => 0.0,
        };
        for (i, (x, y)) in ev.iter().zip(&av).enumerate() {
            let ok = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol * (1.0 + x.abs());
            assert!(
                ok,
                "{what} {dt:?} {op:?} axes {axes:?} at {i}: cpu {x} vs cuda {y}"
            );
        }
    }
}

#[test]
fn every_axis_set_every_dtype() {
    let shape = [3, 4, 5];
    let v = data(60, 1);
    let sets: [&[isize]; 7] = [&[0], &[1], &[2], &[0, 1], &[0, 2], &[1, 2], &[0, 1, 2]];
    for dt in [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::I64,
        DType::U8,
    ] {
        let v: Vec<f64> = if dt == DType::U8 {
            v.iter().map(|x| x.abs() * 10.0).collect()
        } else {
            v.clone()
        };
        for axes in sets {
            check("contiguous", &v, &shape, dt, View::Id, axes);
            check("permuted", &v, &shape, dt, View::Permute201, axes);
            check("sliced", &v, &shape, dt, View::SliceStep2, axes);
        }
    }
}

#[test]
fn long_rows_columns_and_splits() {
    let cases: [(&[usize], &[isize]); 8] = [
        (&[7, 300], &[1]),       // block per row
        (&[3, 9000], &[1]),      // 512-thread blocks, split
        (&[1, 50_000], &[1]),    // one row split over blocks
        (&[50_000, 3], &[0]),    // column, split
        (&[300, 70], &[0]),      // column, many tiles
        (&[40, 33, 5], &[0, 2]), // 2-D reduced layout
        (&[2, 20_000], &[0, 1]), // everything
        (&[600, 40], &[1]),      // warp per row, many rows
    ];
    for (shape, axes) in cases {
        let n = shape.iter().product();
        let v = data(n, n as u64);
        for dt in [DType::F32, DType::F64, DType::BF16, DType::I64] {
            check("long", &v, shape, dt, View::Id, axes);
        }
        check("long transposed", &v, shape, DType::F32, View::TT, axes);
    }
    let v = data(64 * 300, 5);
    check(
        "transposed column",
        &v,
        &[64, 300],
        DType::F32,
        View::T,
        &[1],
    );
    check("transposed row", &v, &[64, 300], DType::F64, View::T, &[0]);
}

#[test]
fn nan_ties_signed_zero_empty_and_size_one() {
    let nan = f64::NAN;
    for dt in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let v = [1.0, nan, 3.0, nan, 2.0, 5.0, 5.0, 1.0, -0.0, 0.0, 0.0, -0.0];
        check("nan/ties", &v, &[3, 4], dt, View::Id, &[1]);
        check("nan/ties t", &v, &[3, 4], dt, View::T, &[0]);
        let mut long = data(5000, 9);
        long[4321] = nan;
        long[77] = 10.0;
        long[3000] = 10.0;
        check("nan long", &long, &[1, 5000], dt, View::Id, &[1]);
        long[4321] = 10.0;
        check("ties long", &long, &[1, 5000], dt, View::Id, &[1]);
        check("ties long col", &long, &[5000, 1], dt, View::Id, &[0]);
    }
    let dev = Cuda::sim().unwrap();
    // sum over an empty dim is 0; an empty output needs no launch
    let e = Tensor::<Cuda>::zeros(&[3, 0], DType::F32, &dev).unwrap();
    assert_eq!(
        e.sum(&[1], false).unwrap().to_vec::<f32>().unwrap(),
        vec![0.0; 3]
    );
    assert_eq!(e.sum(&[0], true).unwrap().shape(), &[1, 0]);
    assert!(e.max(&[1], false).is_err());
    check(
        "size-1",
        &data(6, 3),
        &[1, 6, 1],
        DType::F32,
        View::Id,
        &[0, 2],
    );
    check(
        "size-1 all",
        &data(6, 3),
        &[1, 6, 1],
        DType::F64,
        View::Id,
        &[0, 1, 2],
    );
}

#[test]
fn conformance_family_and_properties() {
    let dev = Cuda::sim().unwrap();
    let tol = ToleranceTable::default();
    tessera_testkit::ops::check_family(&dev, "reduce", &tol).unwrap();
    tessera_testkit::props::check_reduction_props(&dev, &tol, 64).unwrap();
}

#[test]
fn every_schedule_gives_the_same_results() {
    use tessera_cuda::driver::sim::{set_schedule, Schedule};
    for s in [Schedule::Reverse, Schedule::Shuffled] {
        set_schedule(s);
        let v = data(3 * 9000, 2);
        check("sched block", &v, &[3, 9000], DType::F32, View::Id, &[1]);
        check("sched col", &v, &[9000, 3], DType::F64, View::Id, &[0]);
        check("sched warp", &v, &[90, 300], DType::BF16, View::T, &[0]);
    }
    set_schedule(Schedule::Forward);
}
