//! Packing for the AMX kernel (`amx.rs`): f32 operands rounded to bf16 in the tile layouts.
//!
//! - A: `rows.div_ceil(32)` panels, each 32 rows of `kp = kpad(kc)` bf16, row-major
//!   (`a(i, p)` at bf16 index `panel * 32 * kp + i * kp + p`).
//! - B: `cols.div_ceil(32)` panels, each `kp / 2` rows of 32 `u32` pairs
//!   (`(b(2q, j), b(2q + 1, j))` at u32 index `panel * 16 * kp + q * 32 + j`).
//!
//! Rows, columns and `k` values past the operand are zero. The rounding is round-to-nearest-
//! even, as PyTorch's: the vector paths use `vcvtne2ps2bf16` (which, like the kernel, treats
//! subnormal f32 inputs as zero), the edges the scalar rounding of `precision.rs`.
//!
//! Every operand layout the autograd's matmuls produce has a vector path: row-major A (`k`
//! contiguous: 32 values per conversion), column-major A (a transposed view, as in a weight
//! gradient `dYᵀ X`: 16 rows of two `k` per conversion, scattered to their rows), row-major B
//! (two rows of 16 columns interleaved into pairs) and column-major B (a transposed weight,
//! `X Wᵀ`: 32 `k` of one column, scattered down the panel).

use super::amx::{kpad, MR_AMX};
use super::pack::Mat;
use super::precision::bf16_bits;
use super::NR;
use core::arch::asm;

/// `vpermw` index that interleaves the two 16-word halves of a register into pairs:
/// word `2j` takes word `j` (the low half), word `2j + 1` takes word `16 + j`.
#[repr(C, align(64))]
struct Index([u16; 32]);

static INTERLEAVE: Index = {
    let mut v = [0u16; 32];
    let mut j = 0;
    while j < 16 {
        v[2 * j] = j as u16;
        v[2 * j + 1] = 16 + j as u16;
        j += 1;
    }
    Index(v)
};

/// 32 f32 at `src` to 32 bf16 at `dst`.
///
/// # Safety
/// AVX512_BF16; `src` readable and `dst` writable for 32 elements.
#[inline(always)]
unsafe fn cvt32(src: *const f32, dst: *mut u16) {
    asm!(
        "vmovups zmm0, [{s}]",
        "vmovups zmm1, [{s} + 64]",
        "vcvtne2ps2bf16 zmm2, zmm1, zmm0",
        "vmovdqu16 [{d}], zmm2",
        s = in(reg) src,
        d = in(reg) dst,
        out("xmm0") _, out("xmm1") _, out("xmm2") _,
        options(nostack),
    );
}

/// The `asm!` lines shared by [`pairs16`] and [`pairs16_scatter`]: 16 f32 at `{lo}` and 16 at
/// `{hi}` rounded to bf16 (`zmm2`'s low and high halves), then interleaved by `{ix}`
/// ([`INTERLEAVE`]) into 16 u32 pairs in `zmm2`. Clobbers `zmm0..zmm3`.
macro_rules! interleave_pairs {
    () => {
        concat!(
            "vmovups zmm0, [{lo}]\n",
            "vmovups zmm1, [{hi}]\n",
            "vcvtne2ps2bf16 zmm2, zmm1, zmm0\n",
            "vmovdqu16 zmm3, [{ix}]\n",
            "vpermw zmm2, zmm3, zmm2",
        )
    };
}

/// 16 f32 at `lo` and 16 at `hi` to 16 u32 pairs `(lo[j], hi[j])` at `dst`.
///
/// # Safety
/// AVX512_BF16 and AVX512BW; 16 elements readable at `lo` and `hi`, writable at `dst`.
#[inline(always)]
unsafe fn pairs16(lo: *const f32, hi: *const f32, dst: *mut u32) {
    asm!(
        interleave_pairs!(),
        "vmovdqu32 [{d}], zmm2",
        lo = in(reg) lo,
        hi = in(reg) hi,
        ix = in(reg) INTERLEAVE.0.as_ptr(),
        d = in(reg) dst,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        options(nostack),
    );
}

/// Like [`pairs16`], but pair `j` goes to `dst + offsets[j]` (u32 units).
///
/// # Safety
/// As [`pairs16`], with every `dst + offsets[j]` writable.
#[inline(always)]
unsafe fn pairs16_scatter(lo: *const f32, hi: *const f32, dst: *mut u32, offsets: &[i32; 16]) {
    asm!(
        interleave_pairs!(),
        "vmovdqu32 zmm4, [{off}]",
        "kxnorw k1, k1, k1",
        "vpscatterdd [{d} + zmm4 * 4] {{k1}}, zmm2",
        lo = in(reg) lo,
        hi = in(reg) hi,
        ix = in(reg) INTERLEAVE.0.as_ptr(),
        off = in(reg) offsets.as_ptr(),
        d = in(reg) dst,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _, out("xmm4") _,
        out("k1") _,
        options(nostack),
    );
}

/// 32 f32 at `src` to 16 u32 pairs `(src[2q], src[2q + 1])` at `dst + offsets[q]`.
///
/// # Safety
/// AVX512_BF16; 32 elements readable at `src`, every `dst + offsets[q]` writable.
#[inline(always)]
unsafe fn cvt32_scatter(src: *const f32, dst: *mut u32, offsets: &[i32; 16]) {
    asm!(
        "vmovups zmm0, [{s}]",
        "vmovups zmm1, [{s} + 64]",
        "vcvtne2ps2bf16 zmm2, zmm1, zmm0",
        "vmovdqu32 zmm4, [{off}]",
        "kxnorw k1, k1, k1",
        "vpscatterdd [{d} + zmm4 * 4] {{k1}}, zmm2",
        s = in(reg) src,
        off = in(reg) offsets.as_ptr(),
        d = in(reg) dst,
        out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm4") _,
        out("k1") _,
        options(nostack),
    );
}

/// `lanes` offsets `0, step, 2 step, ...` (u32 units) for the scatters.
#[repr(C, align(64))]
struct Offsets([i32; 16]);

fn offsets(step: usize) -> Offsets {
    let mut o = [0i32; 16];
    for (q, v) in o.iter_mut().enumerate() {
        *v = (q * step) as i32;
    }
    Offsets(o)
}

/// Packs rows `0..rows`, `k` in `0..kc` of `a` into the AMX A layout (module docs).
///
/// # Safety
/// `amx::available()`; every `a(i, p)`, `i < rows`, `p < kc`, is readable; `dst` is valid for
/// `rows.div_ceil(32) * amx::panel_words(kc)` u32 writes and 64-byte aligned.
pub(super) unsafe fn pack_a(dst: *mut u32, a: Mat, rows: usize, kc: usize) {
    let kp = kpad(kc);
    let d16 = dst.cast::<u16>();
    for (panel, i0) in (0..rows).step_by(MR_AMX).enumerate() {
        let r = MR_AMX.min(rows - i0);
        let d = d16.add(panel * MR_AMX * kp);
        let a = a.at(i0, 0);
        // Which (row, k) the vector paths covered; the rest is scalar below.
        let (vec_rows, vec_k) = if a.cs == 1 {
            let k32 = kc - kc % 32;
            for i in 0..r {
                for p in (0..k32).step_by(32) {
                    cvt32(a.ptr.add(i * a.rs + p), d.add(i * kp + p));
                }
            }
            (r, k32)
        } else if a.rs == 1 {
            // Column-major: for each pair of k, 16 rows at a time, each row's pair scattered
            // to its row of the panel (row stride kp / 2 u32).
            let r16 = r - r % 16;
            let k2 = kc - kc % 2;
            let off = offsets(kp / 2);
            for i in (0..r16).step_by(16) {
                for p in (0..k2).step_by(2) {
                    let lo = a.ptr.add(i + p * a.cs);
                    let dd = d.add(i * kp + p).cast::<u32>();
                    pairs16_scatter(lo, lo.add(a.cs), dd, &off.0);
                }
            }
            (r16, k2)
        } else {
            (0, 0)
        };
        for i in 0..MR_AMX {
            let row = d.add(i * kp);
            let start = if i < vec_rows { vec_k } else { 0 };
            for p in start..kp {
                *row.add(p) = if i < r && p < kc {
                    bf16_bits(a.get(i, p))
                } else {
                    0
                };
            }
        }
    }
}

/// Packs `k` in `0..kc`, columns `0..cols` of `b` into the AMX B layout (module docs).
///
/// # Safety
/// `amx::available()`; every `b(p, j)`, `p < kc`, `j < cols`, is readable; `dst` is valid for
/// `cols.div_ceil(32) * amx::panel_words(kc)` u32 writes and 64-byte aligned.
pub(super) unsafe fn pack_b(dst: *mut u32, b: Mat, kc: usize, cols: usize) {
    let kp = kpad(kc);
    let kq = kp / 2;
    for (panel, j0) in (0..cols).step_by(NR).enumerate() {
        let c = NR.min(cols - j0);
        let d = dst.add(panel * NR * kq);
        let b = b.at(0, j0);
        // Pairs q < vec_q of columns < vec_cols are written by the vector paths.
        let (vec_cols, vec_q) = if b.cs == 1 && c == NR {
            let q2 = kc / 2;
            for q in 0..q2 {
                let lo = b.ptr.add(2 * q * b.rs);
                let hi = lo.add(b.rs);
                pairs16(lo, hi, d.add(q * NR));
                pairs16(lo.add(16), hi.add(16), d.add(q * NR + 16));
            }
            (NR, q2)
        } else if b.rs == 1 {
            // Column-major: 32 k of one column are 16 pairs, one per row of the panel.
            let k32 = kc - kc % 32;
            let off = offsets(NR);
            for j in 0..c {
                for p in (0..k32).step_by(32) {
                    cvt32_scatter(b.ptr.add(j * b.cs + p), d.add(p / 2 * NR + j), &off.0);
                }
            }
            (c, k32 / 2)
        } else {
            (0, 0)
        };
        // The rest, scalar: pairs from vec_q on in the vector columns, all of the others.
        for j in 0..NR {
            let q0 = if j < vec_cols { vec_q } else { 0 };
            for q in q0..kq {
                let e = |p: usize| {
                    if j < c && p < kc {
                        bf16_bits(b.get(p, j)) as u32
                    } else {
                        0
                    }
                };
                *d.add(q * NR + j) = e(2 * q) | e(2 * q + 1) << 16;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::amx::{available, panel_words};
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn bits(x: f32) -> u16 {
        bf16_bits(x)
    }

    /// Every layout (row- and column-major A and B, padded strides), whole and edge panels,
    /// `k` counts on and off the vector widths: each packed entry is the definition's.
    #[test]
    fn packs_match_the_definition() {
        if !available() {
            return; // the vector paths need AMX's companions; nothing else packs this way
        }
        for &(rows, cols, kc) in &[(70, 75, 77), (32, 32, 64), (16, 33, 1), (5, 64, 40)] {
            for (ta, tb, pad) in [(false, false, 0), (true, true, 3), (true, false, 1)] {
                let (ars, acs) = if ta { (1, rows + pad) } else { (kc + pad, 1) };
                let (brs, bcs) = if tb { (1, kc + pad) } else { (cols + pad, 1) };
                let av: Vec<f32> = (0..(rows + pad) * (kc + pad))
                    .map(|x| x as f32 * 0.37 - 11.0)
                    .collect();
                let bv: Vec<f32> = (0..(cols + pad) * (kc + pad))
                    .map(|x| 5.0 - x as f32 * 0.71)
                    .collect();
                let a = Mat {
                    ptr: av.as_ptr(),
                    rs: ars,
                    cs: acs,
                };
                let b = Mat {
                    ptr: bv.as_ptr(),
                    rs: brs,
                    cs: bcs,
                };
                let (ap, bp) = (rows.div_ceil(MR_AMX), cols.div_ceil(NR));
                let words = panel_words(kc);
                // 64-byte aligned destinations, as the scratch buffers are.
                #[repr(C, align(64))]
                #[derive(Clone, Copy)]
                struct Line([u32; 16]);
                let mut pa = vec![Line([u32::MAX; 16]); ap * words / 16];
                let mut pb = vec![Line([u32::MAX; 16]); bp * words / 16];
                // SAFETY: AMX is available; a and b address rows x kc and kc x cols inside
                // av and bv; the destinations hold whole panels.
                unsafe {
                    pack_a(pa.as_mut_ptr().cast(), a, rows, kc);
                    pack_b(pb.as_mut_ptr().cast(), b, kc, cols);
                }
                let kp = kpad(kc);
                let pa16: &[u16] =
                    // SAFETY: plain integers, reinterpreted as the u16 the layout is made of.
                    unsafe { core::slice::from_raw_parts(pa.as_ptr().cast(), ap * words * 2) };
                for i in 0..ap * MR_AMX {
                    for p in 0..kp {
                        let want = if i < rows && p < kc {
                            bits(av[i * ars + p * acs])
                        } else {
                            0
                        };
                        let got = pa16[(i / MR_AMX) * MR_AMX * kp + (i % MR_AMX) * kp + p];
                        assert_eq!(got, want, "a({i}, {p}) {rows}x{kc} ta={ta}");
                    }
                }
                let pb32: &[u32] =
                    // SAFETY: as above.
                    unsafe { core::slice::from_raw_parts(pb.as_ptr().cast(), bp * words) };
                for j in 0..bp * NR {
                    for q in 0..kp / 2 {
                        let e = |p: usize| {
                            if j < cols && p < kc {
                                bits(bv[p * brs + j * bcs]) as u32
                            } else {
                                0
                            }
                        };
                        let got = pb32[(j / NR) * words + q * NR + j % NR];
                        assert_eq!(got, e(2 * q) | e(2 * q + 1) << 16, "b({q}, {j}) tb={tb}");
                    }
                }
            }
        }
    }

    /// On a CPU that lists AMX-BF16 (Linux), the AMX path is taken: a silent fallback to the
    /// slower kernels would pass every other test. (Under valgrind, whose virtual CPU has no
    /// AVX-512, nothing is asserted: the kernels are not reachable there.)
    #[cfg(target_os = "linux")]
    #[test]
    fn amx_is_used_where_the_cpu_lists_it() {
        let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let flags: Vec<&str> = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let listed = ["amx_tile", "amx_bf16", "avx512_bf16", "avx512bw"]
            .iter()
            .all(|f| flags.contains(f));
        if !std::is_x86_feature_detected!("avx512f") {
            return; // an emulated CPU (valgrind) that hides what /proc/cpuinfo lists
        }
        assert_eq!(available(), listed, "AMX listed in /proc/cpuinfo: {listed}");
        if listed {
            let imp = super::super::GemmImpl::for_precision(super::super::MatmulPrecision::Bf16);
            assert_eq!(imp, super::super::GemmImpl::Bf16Amx);
        }
    }
}
