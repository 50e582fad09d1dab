//! `Backend::matmul` (kernels/matmul.cu) under the SIMT shim against the CPU reference
//! (`tensor/src/ops/matmul/cpu.rs`): random shapes including ones that are not multiples of
//! the tiles, 0 and 1, transposed, offset and broadcast (stride-0) operands, every float dtype;
//! then the conformance kit's matmul family and property check, and a timing.
#![cfg(feature = "sim")]

use std::time::Instant;
use tessera_cuda::Cuda;
use tessera_tensor::{Backend, Cpu, DType, Tensor};
use tessera_testkit::{ops, props, ToleranceTable};

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

fn dev() -> Cuda {
    Cuda::sim().expect("the SIMT shim device")
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// How one operand of logical shape `[batch.., r, c]` is stored and viewed.
#[derive(Clone, Copy, Debug, Default)]
struct View {
    /// Stored as `[.., c, r]` and transposed (column-major matrix).
    trans: bool,
    /// Stored with 3 extra columns and narrowed from column 2: an offset and a padded row.
    offset: bool,
    /// Batch dims stored as 1 and broadcast (stride 0).
    bcast: bool,
}

fn make<B: Backend>(
    dev: &B,
    batch: &[usize],
    r: usize,
    c: usize,
    v: View,
    data: &[f32],
    dt: DType,
) -> Tensor<B> {
    let (r0, c0) = if v.trans { (c, r) } else { (r, c) };
    let c1 = if v.offset { c0 + 3 } else { c0 };
    let mut shape: Vec<usize> = batch.iter().map(|&d| if v.bcast { 1 } else { d }).collect();
    shape.extend([r0, c1]);
    let n: usize = shape.iter().product();
    let mut t = Tensor::from_vec(data[..n].to_vec(), &shape, dev)
        .unwrap()
        .to_dtype(dt)
        .unwrap();
    if v.offset {
        t = t.narrow(-1, 2, c0).unwrap();
    }
    if v.trans {
        t = t.transpose(-1, -2).unwrap();
    }
    if v.bcast {
        let mut full = batch.to_vec();
        full.extend([r, c]);
        t = t.broadcast_to(&full).unwrap();
    }
    t
}

/// Unit roundoff of the accumulation and of the output rounding.
fn eps(dt: DType) -> (f64, f64) {
    match dt {
        DType::F64 => (f64::EPSILON, f64::EPSILON),
        DType::F32 => (f32::EPSILON as f64, f32::EPSILON as f64),
        DType::F16 => (f32::EPSILON as f64, 1.0 / 1024.0),
        _ => (f32::EPSILON as f64, 1.0 / 128.0),
    }
}

/// Runs one product on the shim and the CPU and compares elementwise within
/// `(k + 2) * eps_acc * sum|a||b| + eps_out * |ref|` (the usual GEMM error bound, plus the
/// output rounding, where summation order differs).
#[allow(clippy::too_many_arguments)]
fn check(
    dev: &Cuda,
    rng: &mut Rng,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    va: View,
    vb: View,
    dt: DType,
) {
    let bp: usize = batch.iter().product();
    // Half inputs get 8 significant bits, so that the f32 -> f16/bf16 casts are exact: the
    // CPU's cast (half 2.7's `bf16::from_f64` drops the low 32 bits of the f64 before
    // rounding) and the CUDA cast can differ by one ulp on rare inputs, which is not this
    // test's business.
    let quant = matches!(dt, DType::F16 | DType::BF16);
    let mut gen = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|_| rng.unit())
            .map(|x| {
                if quant {
                    (x * 256.0).round() / 256.0
                } else {
                    x
                }
            })
            .collect()
    };
    let (da, db) = (gen(bp * (m + 3) * (k + 3)), gen(bp * (k + 3) * (n + 3)));
    let (da, db) = (&da[..], &db[..]);
    let what = format!("{dt:?} batch {batch:?} m {m} k {k} n {n} a {va:?} b {vb:?}");
    let ga = make(dev, batch, m, k, va, da, dt);
    let gb = make(dev, batch, k, n, vb, db, dt);
    let ca = make(&Cpu, batch, m, k, va, da, dt);
    let cb = make(&Cpu, batch, k, n, vb, db, dt);
    // Same inputs on both sides (the quantization above keeps the half casts exact).
    assert_eq!(
        ga.to_f64_vec().unwrap(),
        ca.to_f64_vec().unwrap(),
        "{what}: a"
    );
    assert_eq!(
        gb.to_f64_vec().unwrap(),
        cb.to_f64_vec().unwrap(),
        "{what}: b"
    );
    let got = ga.matmul(&gb).unwrap_or_else(|e| panic!("{what}: {e}"));
    let want = ca.matmul(&cb).unwrap();
    assert_eq!(got.shape(), want.shape(), "{what}");
    assert_eq!(got.dtype(), dt, "{what}");
    let scale = ca
        .to_dtype(DType::F64)
        .unwrap()
        .abs()
        .unwrap()
        .matmul(&cb.to_dtype(DType::F64).unwrap().abs().unwrap())
        .unwrap()
        .to_f64_vec()
        .unwrap();
    let (g, w) = (got.to_f64_vec().unwrap(), want.to_f64_vec().unwrap());
    let (ea, eo) = eps(dt);
    for (i, ((x, y), s)) in g.iter().zip(&w).zip(&scale).enumerate() {
        let tol = (k as f64 + 2.0) * ea * s + eo * y.abs();
        assert!(
            (x - y).abs() <= tol || (x.is_nan() && y.is_nan()),
            "{what}: element {i}: {x} vs {y} (tol {tol})"
        );
    }
}

#[test]
fn fixed_shapes_every_dtype_and_layout() {
    let dev = dev();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let views = [
        View::default(),
        View {
            trans: true,
            ..View::default()
        },
        View {
            offset: true,
            ..View::default()
        },
        View {
            trans: true,
            offset: true,
            ..View::default()
        },
    ];
    for dt in DTYPES {
        for (i, &va) in views.iter().enumerate() {
            for &vb in &views[i % 2..] {
                check(&dev, &mut rng, &[], 17, 9, 33, va, vb, dt);
            }
        }
        // Several k-tiles, partial 128x128 tiles, batch entries, the grid-stride tile loop.
        check(
            &dev,
            &mut rng,
            &[2],
            130,
            37,
            150,
            View::default(),
            View::default(),
            dt,
        );
        // Degenerate sizes: empty results, k = 0 (zeros), vectors.
        for (m, k, n) in [
            (0, 3, 4),
            (3, 4, 0),
            (3, 0, 4),
            (1, 5, 1),
            (1, 1, 1),
            (5, 1, 7),
            (1, 40, 70),
        ] {
            check(
                &dev,
                &mut rng,
                &[],
                m,
                k,
                n,
                View::default(),
                View {
                    trans: true,
                    ..View::default()
                },
                dt,
            );
        }
        check(
            &dev,
            &mut rng,
            &[0, 2],
            3,
            4,
            5,
            View::default(),
            View::default(),
            dt,
        );
    }
}

#[test]
fn broadcast_batches_and_merged_rows() {
    let dev = dev();
    let mut rng = Rng(42);
    let (plain, bc) = (
        View::default(),
        View {
            bcast: true,
            ..View::default()
        },
    );
    let bct = View {
        bcast: true,
        trans: true,
        ..View::default()
    };
    for dt in DTYPES {
        // b broadcast over a contiguous batch: one (batch*m) x k GEMM (linear-layer shape).
        check(&dev, &mut rng, &[3, 2], 5, 7, 9, plain, bc, dt);
        check(&dev, &mut rng, &[4], 1, 33, 70, plain, bct, dt);
        // ... and over a batch that does not merge (offset rows), and a broadcast on `a`.
        check(
            &dev,
            &mut rng,
            &[3],
            5,
            7,
            9,
            View {
                offset: true,
                ..plain
            },
            bc,
            dt,
        );
        check(&dev, &mut rng, &[2, 3], 6, 4, 5, bc, plain, dt);
        check(
            &dev,
            &mut rng,
            &[2],
            6,
            4,
            5,
            bct,
            View {
                trans: true,
                offset: true,
                ..plain
            },
            dt,
        );
    }
}

#[test]
fn random_shapes() {
    let dev = dev();
    let mut rng = Rng(7);
    let sizes = [0usize, 1, 2, 3, 5, 8, 16, 17, 31, 64, 65, 100, 129];
    let batches: [&[usize]; 4] = [&[], &[1], &[2], &[2, 3]];
    for case in 0..48 {
        let dt = DTYPES[case % 4];
        let (m, k, n) = (
            sizes[rng.below(13)],
            sizes[rng.below(13)],
            sizes[rng.below(13)],
        );
        let batch = batches[rng.below(4)];
        let view = |rng: &mut Rng| View {
            trans: rng.below(2) == 1,
            offset: rng.below(3) == 0,
            bcast: rng.below(3) == 0,
        };
        let (va, vb) = (view(&mut rng), view(&mut rng));
        check(&dev, &mut rng, batch, m, k, n, va, vb, dt);
    }
}

#[test]
fn nan_and_inf_propagate_like_the_cpu() {
    let dev = dev();
    for dt in DTYPES {
        let mut a: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        a[1] = f32::NAN;
        a[10] = f32::INFINITY;
        let b: Vec<f32> = (0..12).map(|i| 1.0 - i as f32 * 0.25).collect();
        let g = Tensor::from_vec(a.clone(), &[3, 4], &dev)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let h = Tensor::from_vec(b.clone(), &[4, 3], &dev)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let c = Tensor::from_vec(a, &[3, 4], &Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let d = Tensor::from_vec(b, &[4, 3], &Cpu)
            .unwrap()
            .to_dtype(dt)
            .unwrap();
        let x = g.matmul(&h).unwrap().to_f64_vec().unwrap();
        let y = c.matmul(&d).unwrap().to_f64_vec().unwrap();
        for (p, q) in x.iter().zip(&y) {
            assert!(
                p.is_nan() == q.is_nan()
                    && (p.is_nan() || (p - q).abs() <= 1e-2 * q.abs().max(1.0))
                    || p == q,
                "{dt:?}: {x:?} vs {y:?}"
            );
        }
    }
}

#[test]
fn errors_match_the_contract() {
    let dev = dev();
    let a = Tensor::from_vec(vec![1.0f32; 6], &[2, 3], &dev).unwrap();
    let b = Tensor::from_vec(vec![1.0f32; 8], &[2, 4], &dev).unwrap();
    assert!(a.matmul(&b).is_err(), "inner dims differ");
    let i = Tensor::from_vec(vec![1i64; 6], &[2, 3], &dev).unwrap();
    assert!(i.matmul(&i.t().unwrap()).is_err(), "integer matmul");
}

#[test]
fn conformance_family_and_props() {
    let dev = dev();
    let tol = ToleranceTable::default();
    if let Err(f) = ops::check_family(&dev, "matmul", &tol) {
        panic!("{f}");
    }
    if let Err(f) = props::check_matmul_props(&dev, &tol, 64) {
        panic!("{f}");
    }
}

#[test]
fn timing_256_cubed_f32() {
    let dev = dev();
    let data: Vec<f32> = (0..256 * 256)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3)
        .collect();
    let a = Tensor::from_vec(data.clone(), &[256, 256], &dev).unwrap();
    let b = Tensor::from_vec(data, &[256, 256], &dev).unwrap();
    a.matmul(&b).unwrap().to_vec::<f32>().unwrap(); // warm-up
    let start = Instant::now();
    let reps = 3;
    for _ in 0..reps {
        a.matmul(&b).unwrap().to_vec::<f32>().unwrap();
    }
    let s = start.elapsed().as_secs_f64() / reps as f64;
    println!(
        "TIMING sim matmul 256x256x256 f32: {:.1} ms ({:.2} GFLOP/s)",
        s * 1e3,
        2.0 * 256f64.powi(3) / s / 1e9
    );
}
