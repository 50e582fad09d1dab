//! `sgemm_with` against an f64 reference: shapes with edge tiles and several `k` blocks,
//! transposed and strided operands, both precisions, every implementation, and thread-count
//! invariance.

use super::precision::round_bf16;
use super::{sgemm_with, GemmImpl};
use alloc::vec;
use alloc::vec::Vec;

const ALL: [GemmImpl; 6] = [
    GemmImpl::MatrixMultiply,
    GemmImpl::F32,
    GemmImpl::Bf16,
    GemmImpl::Bf16Amx,
    GemmImpl::Bf16Emulated,
    GemmImpl::Bf16Portable,
];

fn is_bf16(imp: GemmImpl) -> bool {
    !matches!(imp, GemmImpl::MatrixMultiply | GemmImpl::F32)
}

fn values(n: usize, seed: u64) -> Vec<f32> {
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

/// An `r x c` operand: its storage and strides (`t`: column-major, a transposed view;
/// `pad`: an extra gap between rows or columns).
struct Operand {
    data: Vec<f32>,
    rs: usize,
    cs: usize,
}

impl Operand {
    fn new(r: usize, c: usize, t: bool, pad: usize, seed: u64) -> Self {
        let (rs, cs) = if t { (1, r + pad) } else { (c + pad, 1) };
        let len = if r * c == 0 {
            0
        } else {
            (r - 1) * rs + (c - 1) * cs + 1
        };
        Operand {
            data: values(len, seed),
            rs,
            cs,
        }
    }

    fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }
}

/// C = A B through `imp`, C written with row stride `rsc` and column stride `csc`.
#[allow(clippy::too_many_arguments)]
fn product(
    imp: GemmImpl,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: &Operand,
    b: &Operand,
    c_col_major: bool,
) -> Vec<f32> {
    let (rsc, csc) = if c_col_major { (1, m) } else { (n, 1) };
    let mut c = vec![f32::NAN; m * n];
    // SAFETY: the operands' storages hold every element addressed by their shapes and
    // strides; `c` is m x n with the strides given.
    unsafe {
        sgemm_with(
            imp,
            threaded,
            m,
            k,
            n,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        );
    }
    // Back to row-major.
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = c[i * rsc + j * csc];
        }
    }
    out
}

/// Checks `imp` against the f64 product (of bf16-rounded inputs for the bf16 paths) within
/// `1e-5 * sum_p |a(i, p) b(p, j)|`; returns the result.
#[allow(clippy::too_many_arguments)]
fn check(
    imp: GemmImpl,
    m: usize,
    k: usize,
    n: usize,
    ta: bool,
    tb: bool,
    pad: usize,
    c_col_major: bool,
) -> Vec<f32> {
    let a = Operand::new(m, k, ta, pad, (m * 31 + k) as u64);
    let b = Operand::new(k, n, tb, pad, (n * 17 + k + 1) as u64);
    let got = product(imp, true, m, k, n, &a, &b, c_col_major);
    let r = |x: f32| if is_bf16(imp) { round_bf16(x) } else { x } as f64;
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut bound) = (0.0f64, 0.0f64);
            for p in 0..k {
                let t = r(a.get(i, p)) * r(b.get(p, j));
                want += t;
                bound += t.abs();
            }
            let g = got[i * n + j] as f64;
            assert!(
                (g - want).abs() <= 1e-5 * bound + 1e-30,
                "{imp:?} {m}x{k}x{n} ta={ta} tb={tb} pad={pad}: c[{i},{j}] = {g}, want {want}"
            );
        }
    }
    got
}

#[test]
fn every_impl_matches_the_f64_reference() {
    let shapes = [
        (1, 1, 1),
        (13, 17, 29),
        (14, 32, 32),
        (15, 33, 31),
        (29, 600, 65),
        (3, 1, 70),
        (300, 500, 200),
    ];
    for imp in ALL {
        for &(m, k, n) in &shapes {
            for (ta, tb, pad, ccm) in [
                (false, false, 0, false),
                (true, false, 0, false),
                (false, true, 3, false),
                (true, true, 1, true),
            ] {
                if m * k * n > 1_000_000 && (ta, tb) != (false, false) && ta != tb {
                    continue; // the slow reference: one transposed variant is enough
                }
                check(imp, m, k, n, ta, tb, pad, ccm);
            }
        }
    }
}

#[test]
fn empty_products() {
    for imp in ALL {
        // k = 0: C is overwritten with zeros.
        let got = check(imp, 4, 0, 5, false, false, 0, false);
        assert!(got.iter().all(|&x| x == 0.0));
        // m = 0 or n = 0: nothing to do.
        assert!(check(imp, 0, 3, 5, false, false, 0, false).is_empty());
        assert!(check(imp, 4, 3, 0, true, true, 0, false).is_empty());
    }
}

#[test]
fn bf16_rounds_the_inputs() {
    let (m, k, n) = (16, 64, 40);
    let a = Operand::new(m, k, false, 0, 1);
    let b = Operand::new(k, n, false, 0, 2);
    let hi = product(GemmImpl::F32, true, m, k, n, &a, &b, false);
    let lo = product(GemmImpl::Bf16, true, m, k, n, &a, &b, false);
    let diff = hi
        .iter()
        .zip(&lo)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        diff > 1e-4,
        "bf16 products equal f32 ones (max diff {diff})"
    );
}

#[test]
fn bf16_fallbacks_match_the_hardware_path() {
    for (m, k, n, ta) in [
        (13, 17, 29, false),
        (70, 301, 90, true),
        (200, 1100, 33, false),
    ] {
        let a = Operand::new(m, k, ta, 0, 3);
        let b = Operand::new(k, n, false, 0, 4);
        let hw = product(GemmImpl::Bf16, true, m, k, n, &a, &b, false);
        for imp in [
            GemmImpl::Bf16Amx,
            GemmImpl::Bf16Emulated,
            GemmImpl::Bf16Portable,
        ] {
            let fb = product(imp, true, m, k, n, &a, &b, false);
            for i in 0..m {
                for j in 0..n {
                    let bound: f64 = (0..k)
                        .map(|p| (round_bf16(a.get(i, p)) * round_bf16(b.get(p, j))).abs() as f64)
                        .sum();
                    let (x, y) = (hw[i * n + j] as f64, fb[i * n + j] as f64);
                    assert!(
                        (x - y).abs() <= 1e-5 * bound,
                        "{imp:?} {m}x{k}x{n} [{i},{j}]"
                    );
                }
            }
        }
    }
}

#[cfg(feature = "std")]
#[test]
fn results_are_bit_identical_across_thread_counts() {
    use crate::cpu::parallel::tests::with_threads;
    // More row panels than column panels (C split by rows), the reverse (split by columns),
    // fewer panels than threads (the shared-B~ nest), several k and n blocks, and a
    // transposed A with a long k (a weight gradient's shape).
    for (m, k, n, ta) in [
        (300, 500, 200, false),
        (20, 700, 2100, false),
        (20, 300, 40, false),
        (192, 1300, 96, true),
    ] {
        let a = Operand::new(m, k, ta, 0, 5);
        let b = Operand::new(k, n, false, 0, 6);
        for imp in [
            GemmImpl::F32,
            GemmImpl::Bf16,
            GemmImpl::Bf16Amx,
            GemmImpl::Bf16Emulated,
        ] {
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            let one = with_threads(1, || bits(product(imp, true, m, k, n, &a, &b, false)));
            let serial = bits(product(imp, false, m, k, n, &a, &b, false));
            assert!(one == serial, "{imp:?} {m}x{k}x{n}: unthreaded differs");
            for t in [2, 3, 7] {
                let many = with_threads(t, || bits(product(imp, true, m, k, n, &a, &b, false)));
                assert!(
                    one == many,
                    "{imp:?} {m}x{k}x{n}: {t} threads differ from 1"
                );
            }
        }
    }
}

/// Row-major A read in place (`kernel_f32_rows.rs`, for C up to a few panels wide) gives
/// the same bits as the packed path, which a column-major copy of the same A takes: one to
/// four column panels, a last partial row panel, a padded row stride, several `k` blocks,
/// and the product split over threads (at least `MC` rows per thread: smaller A is packed).
#[test]
fn row_major_a_read_in_place_matches_the_packed_path() {
    for (m, k, n, pad) in [
        (170, 8, 16, 0),
        (341, 144, 32, 0),
        (400, 77, 64, 3),
        (211, 900, 128, 1),
        (500, 5, 100, 0),
        (3000, 144, 16, 0),
    ] {
        let a = Operand::new(m, k, false, pad, 11);
        let mut at = Operand::new(m, k, true, 0, 0);
        for i in 0..m {
            for p in 0..k {
                at.data[i + p * m] = a.get(i, p);
            }
        }
        let b = Operand::new(k, n, false, 0, 12);
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        for threaded in [false, true] {
            let in_place = bits(product(GemmImpl::F32, threaded, m, k, n, &a, &b, false));
            let packed = bits(product(GemmImpl::F32, threaded, m, k, n, &at, &b, false));
            assert!(
                in_place == packed,
                "{m}x{k}x{n} pad {pad} threaded {threaded}"
            );
        }
        check(GemmImpl::F32, m, k, n, false, false, pad, false);
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn random_shapes_and_layouts(
            m in 0usize..40, k in 0usize..80, n in 0usize..70,
            ta: bool, tb: bool, ccm: bool, pad in 0usize..3, i in 0usize..6,
        ) {
            check(ALL[i], m, k, n, ta, tb, pad, ccm);
        }
    }
}

/// `sgemm_bias_with` is `sgemm_with` and then `+ bias[j]`, bit for bit, on every
/// implementation (the AMX and `vdpbf16ps` kernels included where the CPU has them, else
/// their fallbacks): one and several `k` blocks, edge tiles, C split by rows and by columns
/// over the threads, transposed operands, a column-major C, and `k = 0`.
#[test]
fn bias_epilogue_is_the_separate_add_bit_for_bit() {
    let shapes = [
        (3, 5, 7),
        (37, 64, 45),
        (200, 900, 70),
        (20, 1000, 300),
        (50, 0, 33),
    ];
    for imp in ALL {
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            for (ta, tb, c_col_major) in [(false, false, false), (true, true, true)] {
                let a = Operand::new(m, k, ta, 1, 100 + s as u64);
                let b = Operand::new(k, n, tb, 0, 200 + s as u64);
                let bias = values(n, 300 + s as u64);
                let mut want = product(imp, true, m, k, n, &a, &b, false);
                for (i, v) in want.iter_mut().enumerate() {
                    *v += bias[i % n];
                }
                let (rsc, csc) = if c_col_major { (1, m) } else { (n, 1) };
                let mut c = vec![f32::NAN; m * n];
                // SAFETY: as in `product`, and `bias` holds `n` values.
                unsafe {
                    super::sgemm_bias_with(
                        imp,
                        true,
                        m,
                        k,
                        n,
                        a.data.as_ptr(),
                        a.rs as isize,
                        a.cs as isize,
                        b.data.as_ptr(),
                        b.rs as isize,
                        b.cs as isize,
                        bias.as_ptr(),
                        c.as_mut_ptr(),
                        rsc as isize,
                        csc as isize,
                    );
                }
                for i in 0..m {
                    for j in 0..n {
                        let (g, w) = (c[i * rsc + j * csc], want[i * n + j]);
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{imp:?} {m}x{k}x{n} ta={ta} c_col_major={c_col_major}: [{i},{j}] {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}

/// Every element of C from the f32 kernels is its own FMA chain in `k` order, one chain per
/// `k` block (equal even blocks of at most `KC_F32`), the blocks' sums added to C in turn:
/// this scalar model of it must match bit for bit whichever tile shape (14 x 32, the narrow
/// 14 x 16), A path (packed, read in place) and orientation (C or Cᵀ computed) a product
/// takes.
#[test]
fn f32_kernels_sum_each_element_in_k_order() {
    if !super::has_avx512f() {
        return; // `GemmImpl::F32` is matrixmultiply here, which sums in its own order
    }
    let model = |m: usize, k: usize, n: usize, a: &Operand, b: &Operand| {
        let kc = k.div_ceil(k.div_ceil(super::KC_F32)).next_multiple_of(2);
        let mut c = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                for (block, p0) in (0..k).step_by(kc).enumerate() {
                    let mut s = 0.0f32;
                    for p in p0..(p0 + kc).min(k) {
                        s = a.get(i, p).mul_add(b.get(p, j), s);
                    }
                    c[i * n + j] = if block == 0 { s } else { s + c[i * n + j] };
                }
            }
        }
        c
    };
    // Narrow C (16 columns: the 14 x 16 tile; 48 and 144: a last half panel), A read in
    // place (>= 168 rows, row-major) or packed, several k blocks, a weight gradient's shape
    // (few rows, long k), transposed operands, a column-major C.
    for (m, k, n, ta, tb, ccm) in [
        (30, 144, 16, false, false, false),
        (400, 144, 16, false, true, false),
        (17, 50, 48, true, false, false),
        (200, 800, 9, false, false, true),
        (16, 2000, 144, true, false, false),
        (32, 900, 288, true, false, false),
        (300, 16, 144, false, false, false),
        (45, 70, 100, false, false, false),
        // Several k blocks whose B~ fits `nest_c_resident`'s budget: each block of rows
        // takes every k block in turn (several row blocks, a narrow last panel, A
        // transposed, C column-major).
        (350, 1000, 100, false, false, false),
        (400, 700, 40, true, false, true),
        // Small products (`small.rs`): B transposed and copied, B read in place (whole
        // vectors), A column-major, every tile width and a partial last vector, C
        // column-major, the largest k, ViT-S/16's `q kᵀ`.
        (17, 64, 17, false, true, false),
        (17, 17, 64, false, false, false),
        (64, 17, 17, true, false, false),
        (17, 17, 64, true, false, false),
        (9, 7, 40, false, false, true),
        (13, 5, 200, false, true, false),
        (3, 128, 8, false, false, false),
        (197, 64, 197, false, true, false),
        (1, 1, 1, false, false, false),
    ] {
        let a = Operand::new(m, k, ta, 1, 21);
        let b = Operand::new(k, n, tb, 0, 22);
        let want: Vec<u32> = model(m, k, n, &a, &b)
            .into_iter()
            .map(f32::to_bits)
            .collect();
        for threaded in [false, true] {
            let got = product(GemmImpl::F32, threaded, m, k, n, &a, &b, ccm);
            let got: Vec<u32> = got.into_iter().map(f32::to_bits).collect();
            assert!(
                got == want,
                "{m}x{k}x{n} ta={ta} tb={tb} ccm={ccm} threaded={threaded}"
            );
        }
    }
}
