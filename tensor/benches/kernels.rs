//! CPU kernel benchmarks: GEMM through `Tensor::matmul` against `matrixmultiply::sgemm` called
//! directly, a ResNet-50 convolution, the three products of the BYOL examples' largest 3×3
//! convolutions, and softmax / layer_norm at ViT-S/16 shapes.
//!
//! ```text
//! cargo bench -p tessera-tensor --bench kernels
//! cargo bench -p tessera-tensor --bench kernels -- gemm      # one group
//! ```
//!
//! GEMM runs single-threaded: this binary sets `MATMUL_NUM_THREADS=1` (matrixmultiply's
//! threads) and `TESSERA_NUM_THREADS` to the same value (the threads of `Tensor::matmul`'s
//! f32 GEMM, `tessera_tensor::cpu::gemm`) before the first GEMM unless they are already set
//! (set them yourself to measure the threaded GEMMs).
//! Throughput is reported as elements/s where one element is one floating-point operation
//! (`2·m·k·n` per GEMM), so criterion's `Gelem/s` reads as GFLOP/s; softmax and layer_norm
//! report bytes/s counting one f32 read and one f32 write per element. Results and the machine
//! they were measured on are in `BENCHMARKS.md` at the repository root.
//!
//! On a shared machine, criterion's separate runs of the two GEMM paths see different load.
//! `TESSERA_GEMM_AB=<rounds>` runs an interleaved A/B comparison instead of the criterion
//! benchmarks (tensor, direct, tensor, direct, ... `rounds` times per shape, so both see the
//! same load) and prints the best and median throughput of each and their ratio:
//!
//! ```text
//! TESSERA_GEMM_AB=30 cargo bench -p tessera-tensor --bench kernels
//! ```
//!
//! The GEMMs of the default training step (a DINO ViT of width 192) compare the three f32
//! GEMM implementations, `matrixmultiply` and Tessera's packed AVX-512 kernels in f32 and
//! bf16 precision (`tessera_tensor::cpu::gemm`), called directly on the same operands, in
//! the group `gemm_impls` or interleaved (one round = each implementation once per shape)
//! with `TESSERA_GEMM_IMPLS=<rounds>`. For a threaded comparison set both thread counts:
//!
//! ```text
//! MATMUL_NUM_THREADS=2 TESSERA_NUM_THREADS=2 TESSERA_GEMM_IMPLS=20 \
//!     cargo bench -p tessera-tensor --bench kernels
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use tessera_tensor::cpu::gemm::{sgemm_with, GemmImpl};
use tessera_tensor::{ConvOptions, Cpu, DType, Tensor};

/// Deterministic values in [-1, 1) (a 64-bit LCG): benchmark inputs need no better randomness.
fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor(shape: &[usize], seed: u64) -> Tensor<Cpu> {
    let n = shape.iter().product();
    Tensor::from_vec(data(n, seed), shape, &Cpu).expect("bench input")
}

/// `[m, k] @ [k, n]`: square sizes and the ViT-S/16 shapes at batch 8 (8·197 = 1576 tokens,
/// width 384): the qkv projection (384 → 1152) and the MLP's first layer (384 → 1536).
const GEMM_SHAPES: [(usize, usize, usize); 4] = [
    (512, 512, 512),
    (1024, 1024, 1024),
    (1576, 384, 1152),
    (1576, 384, 1536),
];

/// `C = A @ B` through `matrixmultiply::sgemm` on row-major contiguous buffers.
fn direct_sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n);
    // SAFETY: `a` is m×k, `b` is k×n and `out` is m×n, all row-major and contiguous (checked
    // above), matching the sizes and strides passed.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The interleaved A/B comparison of the two GEMM paths (see the module docs).
fn gemm_ab(rounds: usize) {
    use std::time::Instant;
    println!(
        "gemm A/B, interleaved, {rounds} rounds, MATMUL_NUM_THREADS={}: GFLOP/s best (median)",
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_default()
    );
    for &(m, k, n) in &GEMM_SHAPES {
        let flop = (2 * m * k * n) as f64;
        let (at, bt) = (tensor(&[m, k], 1), tensor(&[k, n], 2));
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0f32; m * n];
        let (mut t_tensor, mut t_direct) = (Vec::new(), Vec::new());
        for _ in 0..rounds + 1 {
            let t = Instant::now();
            black_box(at.matmul(black_box(&bt)).expect("matmul"));
            t_tensor.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            direct_sgemm(m, k, n, black_box(&a), black_box(&b), &mut out);
            black_box(&mut out);
            t_direct.push(t.elapsed().as_secs_f64());
        }
        // The first round is a warm-up.
        let stats = |v: &mut Vec<f64>| {
            v.remove(0);
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2])
        };
        let ((tb, tm), (db, dm)) = (stats(&mut t_tensor), stats(&mut t_direct));
        println!(
            "{m}x{k}x{n}: tensor {:.1} ({:.1}), direct {:.1} ({:.1}), tensor/direct {:.3} ({:.3})",
            flop / tb / 1e9,
            flop / tm / 1e9,
            flop / db / 1e9,
            flop / dm / 1e9,
            db / tb,
            dm / tm,
        );
    }
}

/// The default training step's GEMMs, `(m, k, n, A transposed, B transposed)`: tokens
/// `4352 = 64·68` (qkv, 192 → 576) and `6912` (MLP, 192 ↔ 768), the DINO head (768 → 2048
/// with hidden 2048), and the backward products with a transposed view: `dW = Xᵀ dY` and
/// `dX = dY Wᵀ`. Then ViT-S/16's at batch 8 (1576 tokens, width 384, MLP 1536): the forward
/// `X Wᵀ` (B transposed, as `nn::Linear` multiplies), `dX = dY W` and `dW = dYᵀ X`.
const TRAIN_SHAPES: [(usize, usize, usize, bool, bool); 12] = [
    (4352, 192, 576, false, false),
    (6912, 192, 768, false, false),
    (6912, 768, 192, false, false),
    (768, 2048, 2048, false, false),
    (768, 192, 2048, false, false),
    (192, 6912, 768, true, false),
    (6912, 768, 192, false, true),
    (1576, 384, 1152, false, true),
    (1576, 384, 1536, false, true),
    (1576, 1536, 384, false, false),
    (1536, 1576, 384, true, false),
    (384, 1576, 1536, true, false),
];

const IMPLS: [(&str, GemmImpl); 5] = [
    ("matrixmultiply", GemmImpl::MatrixMultiply),
    ("packed_f32", GemmImpl::F32),
    ("packed_bf16", GemmImpl::Bf16),
    ("amx_bf16", GemmImpl::Bf16Amx),
    ("bf16_on_f32_kernel", GemmImpl::Bf16Emulated),
];

/// `C = A B` through `imp`; `a` holds `A` (or `Aᵀ` row-major when `ta`), `b` likewise.
#[allow(clippy::too_many_arguments)]
fn impl_sgemm(
    imp: GemmImpl,
    (m, k, n, ta, tb): (usize, usize, usize, bool, bool),
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
) {
    assert!(a.len() == m * k && b.len() == k * n && out.len() == m * n);
    let (rsa, csa) = if ta { (1, m) } else { (k, 1) };
    let (rsb, csb) = if tb { (1, k) } else { (n, 1) };
    // SAFETY: `a` is m×k and `b` k×n with the strides above (row-major, or row-major
    // transposes), `out` is m×n row-major (lengths checked above).
    unsafe {
        sgemm_with(
            imp,
            true,
            m,
            k,
            n,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

fn shape_label(&(m, k, n, ta, tb): &(usize, usize, usize, bool, bool)) -> String {
    format!(
        "{m}x{k}x{n}{}{}",
        if ta { "_At" } else { "" },
        if tb { "_Bt" } else { "" }
    )
}

/// The interleaved comparison of [`IMPLS`] on [`TRAIN_SHAPES`] (see the module docs).
fn gemm_impls_ab(rounds: usize) {
    use std::time::Instant;
    println!(
        "gemm implementations, interleaved, {rounds} rounds, MATMUL_NUM_THREADS={}, \
         TESSERA_NUM_THREADS={}: GFLOP/s best (median)",
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_default(),
        tessera_tensor::cpu::parallel::num_threads(),
    );
    println!(
        "--precision bf16 uses {:?} on this CPU",
        GemmImpl::for_precision(tessera_tensor::MatmulPrecision::Bf16)
    );
    for shape in &TRAIN_SHAPES {
        let (m, k, n, _, _) = *shape;
        let flop = (2 * m * k * n) as f64;
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0f32; m * n];
        let mut times = vec![Vec::new(); IMPLS.len()];
        for _ in 0..rounds + 1 {
            for (t, &(_, imp)) in times.iter_mut().zip(&IMPLS) {
                let start = Instant::now();
                impl_sgemm(imp, *shape, black_box(&a), black_box(&b), &mut out);
                black_box(&mut out);
                t.push(start.elapsed().as_secs_f64());
            }
        }
        let mut line = shape_label(shape);
        for (t, (name, _)) in times.iter_mut().zip(&IMPLS) {
            t.remove(0); // warm-up
            t.sort_by(f64::total_cmp);
            let (best, median) = (t[0], t[t.len() / 2]);
            line += &format!(
                ", {name} {:.1} ({:.1})",
                flop / best / 1e9,
                flop / median / 1e9
            );
        }
        println!("{line}");
    }
}

fn gemm_impls(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_impls");
    for shape in &TRAIN_SHAPES {
        let (m, k, n, _, _) = *shape;
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        let (a, b) = (data(m * k, 1), data(k * n, 2));
        let mut out = vec![0.0f32; m * n];
        for (name, imp) in IMPLS {
            g.bench_function(BenchmarkId::new(name, shape_label(shape)), |bench| {
                bench.iter(|| {
                    impl_sgemm(imp, *shape, black_box(&a), black_box(&b), &mut out);
                    black_box(&mut out);
                })
            });
        }
    }
    g.finish();
}

fn gemm(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm_f32_1thread");
    for &(m, k, n) in &GEMM_SHAPES {
        let label = format!("{m}x{k}x{n}");
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));

        let a = tensor(&[m, k], 1);
        let b = tensor(&[k, n], 2);
        g.bench_function(BenchmarkId::new("tensor_matmul", &label), |bench| {
            bench.iter(|| black_box(a.matmul(black_box(&b)).expect("matmul")))
        });

        let a = data(m * k, 1);
        let b = data(k * n, 2);
        let mut out = vec![0.0f32; m * n];
        g.bench_function(BenchmarkId::new("direct_sgemm", &label), |bench| {
            bench.iter(|| {
                direct_sgemm(m, k, n, black_box(&a), black_box(&b), &mut out);
                black_box(&mut out);
            })
        });
    }
    g.finish();
}

/// A ResNet-50 `conv2_x` 3×3 convolution: batch 8, 64 → 64 channels, 56×56, stride 1, pad 1.
fn conv(c: &mut Criterion) {
    let (n, cin, cout, hw, kk) = (8, 64, 64, 56, 3);
    let mut g = c.benchmark_group("conv2d_f32_1thread");
    g.throughput(Throughput::Elements(
        (2 * n * cout * hw * hw * cin * kk * kk) as u64,
    ));
    let x = tensor(&[n, cin, hw, hw], 3);
    let w = tensor(&[cout, cin, kk, kk], 4);
    let opts = ConvOptions::new(1, 1);
    g.bench_function(
        BenchmarkId::new("tensor_conv2d", "8x64x56x56_k3_64"),
        |bench| bench.iter(|| black_box(x.conv2d(black_box(&w), None, &opts).expect("conv2d"))),
    );
    g.finish();
}

/// The three products of a 3×3 convolution (stride 1, pad 1; on one thread unless
/// `TESSERA_NUM_THREADS` is set, like the GEMMs), at the shapes of the BYOL examples' 3×3 layers with the most patch rows: ResNet-50's
/// `conv2_x` at batch 16 (8 images × 2 views) and the narrow ResNet's first stage at batch
/// 256 (128 × 2). These are what `ops/conv/general.rs` cuts into chunks of images.
fn conv_products(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv2d_products_f32");
    for (n, cin, cout, hw) in [(16, 64, 64, 56), (256, 16, 16, 28)] {
        g.throughput(Throughput::Elements(
            (2 * n * cout * hw * hw * cin * 9) as u64,
        ));
        let x = tensor(&[n, cin, hw, hw], 3);
        let w = tensor(&[cout, cin, 3, 3], 4);
        let opts = ConvOptions::new(1, 1);
        let p = x.conv2d_params(w.shape(), &opts).expect("conv2d params");
        let gy = tensor(&[n, cout, hw, hw], 5);
        let label = format!("{n}x{cin}x{hw}x{hw}_k3_{cout}");
        g.bench_function(BenchmarkId::new("forward", &label), |bench| {
            bench.iter(|| black_box(x.conv2d(black_box(&w), None, &opts).expect("conv2d")))
        });
        g.bench_function(BenchmarkId::new("input_grad", &label), |bench| {
            bench.iter(|| black_box(gy.conv2d_backward_input(black_box(&w), &p).expect("dx")))
        });
        g.bench_function(BenchmarkId::new("weight_grad", &label), |bench| {
            bench.iter(|| black_box(gy.conv2d_backward_weight(black_box(&x), &p).expect("dw")))
        });
    }
    g.finish();
}

/// ViT-S/16 at batch 8: attention scores [8·6 heads, 197, 197] and token features [1576, 384].
const ROW_SHAPES: [&[usize]; 2] = [&[48, 197, 197], &[1576, 384]];

fn label(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
}

fn softmax(c: &mut Criterion) {
    let mut g = c.benchmark_group("softmax_f32");
    for shape in ROW_SHAPES {
        let x = tensor(shape, 5);
        g.throughput(Throughput::Bytes((2 * 4 * x.numel()) as u64));
        g.bench_function(BenchmarkId::new("last_axis", label(shape)), |bench| {
            bench.iter(|| black_box(black_box(&x).softmax(-1).expect("softmax")))
        });
    }
    g.finish();
}

fn layer_norm(c: &mut Criterion) {
    let mut g = c.benchmark_group("layer_norm_f32");
    for shape in ROW_SHAPES {
        let d = *shape.last().expect("rank >= 1");
        let x = tensor(shape, 6);
        let w = Tensor::ones(&[d], DType::F32, &Cpu).expect("weight");
        let b = Tensor::zeros(&[d], DType::F32, &Cpu).expect("bias");
        g.throughput(Throughput::Bytes((2 * 4 * x.numel()) as u64));
        g.bench_function(
            BenchmarkId::new("last_axis_affine", label(shape)),
            |bench| {
                bench.iter(|| {
                    black_box(
                        black_box(&x)
                            .layer_norm(&[d], Some(&w), Some(&b), 1e-6)
                            .expect("layer_norm"),
                    )
                })
            },
        );
    }
    g.finish();
}

fn main() {
    // matrixmultiply reads MATMUL_NUM_THREADS once, at its first threaded GEMM: set it before.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", "1");
    }
    // Tessera's own GEMM reads TESSERA_NUM_THREADS once, at its first threaded op.
    if std::env::var_os("TESSERA_NUM_THREADS").is_none() {
        let n = std::env::var("MATMUL_NUM_THREADS").unwrap_or_default();
        std::env::set_var("TESSERA_NUM_THREADS", n);
    }
    eprintln!(
        "kernels: MATMUL_NUM_THREADS={}, TESSERA_NUM_THREADS={}",
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_default(),
        std::env::var("TESSERA_NUM_THREADS").unwrap_or_default()
    );
    if let Some(rounds) = std::env::var("TESSERA_GEMM_AB")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|&r| r > 0)
    {
        gemm_ab(rounds);
        return;
    }
    if let Some(rounds) = std::env::var("TESSERA_GEMM_IMPLS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
        .filter(|&r| r > 0)
    {
        gemm_impls_ab(rounds);
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    gemm(&mut c);
    gemm_impls(&mut c);
    conv(&mut c);
    conv_products(&mut c);
    softmax(&mut c);
    layer_norm(&mut c);
    c.final_summary();
}
