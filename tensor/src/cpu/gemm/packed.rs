//! The blocked loop nest over packed panels and its split over threads (see the docs of
//! [`super`] for the nest and why).

use super::kernel_f32::Out;
use super::pack::{self, Mat};
use super::{kernel_bf16, kernel_f32, KC_BF16, KC_F32, MC, MR, NC, NR};
use core::ops::Range;
use std::cell::RefCell;
use std::vec::Vec;

/// Which packing and microkernel a product uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// f32 panels, the f32 kernel.
    F32,
    /// f32 panels of bf16-rounded values, the f32 kernel (bf16 without AVX512_BF16).
    F32Rounded,
    /// bf16-pair panels, the `vdpbf16ps` kernel.
    Bf16,
}

/// A writable strided matrix: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy, Debug)]
pub(super) struct MatMut {
    pub ptr: *mut f32,
    pub rs: usize,
    pub cs: usize,
}

/// One 64-byte line of packing scratch (the alignment of the kernels' B loads).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u32; 16]);

std::thread_local! {
    /// Per-thread packing buffers, kept between calls: slot 0 holds B~ (on the calling
    /// thread), slot 1 a thread's A~.
    static SCRATCH: [RefCell<Vec<Line>>; 2] =
        const { [RefCell::new(Vec::new()), RefCell::new(Vec::new())] };
}

/// Runs `f` on this thread's scratch `slot`, at least `words` u32 long and 64-byte aligned.
fn with_scratch<R>(slot: usize, words: usize, f: impl FnOnce(*mut u32) -> R) -> R {
    SCRATCH.with(|s| {
        let mut v = s[slot].borrow_mut();
        let lines = words.div_ceil(16);
        if v.len() < lines {
            v.clear();
            v.resize(lines, Line([0; 16]));
        }
        f(v.as_mut_ptr().cast())
    })
}

/// u32 words of one packed panel of `lanes` rows (A) or columns (B) over `kc` values of `k`.
fn panel_words(kind: Kind, kc: usize, lanes: usize) -> usize {
    match kind {
        Kind::Bf16 => pack::pairs_len(kc, lanes),
        Kind::F32 | Kind::F32Rounded => kc * lanes,
    }
}

/// One `(jc, pc)` step of the nest, shared by the threads computing its tiles.
#[derive(Clone, Copy, Debug)]
struct Step {
    kind: Kind,
    /// A at `(0, pc)`, `m x kc`.
    a: Mat,
    /// B~: the packed `kc x nc` block.
    bp: *const u32,
    /// C at `(0, jc)`, `m x nc`.
    c: MatMut,
    m: usize,
    kc: usize,
    nc: usize,
    accumulate: bool,
}

// SAFETY: a `Step` is shared by the threads of one step only while its pointers are valid
// (inside `gemm`); they read A and B~ and write disjoint tiles of C (see `run_part`).
unsafe impl Send for Step {}
// SAFETY: as above.
unsafe impl Sync for Step {}

/// `C = A B` through the packed kernels. `k >= 1`, `m, n >= 1`.
///
/// # Safety
/// As `super::sgemm`, and the CPU supports `kind`'s kernel.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm(
    kind: Kind,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
) {
    let kc_max = if kind == Kind::Bf16 { KC_BF16 } else { KC_F32 };
    // Equal k blocks, of even length so bf16 pairs never straddle two (<= kc_max: it is even).
    let kc_step = k.div_ceil(k.div_ceil(kc_max)).next_multiple_of(2);
    let threads = if threaded {
        crate::cpu::parallel::num_threads()
    } else {
        1
    };
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(kc_step) {
            let kc = kc_step.min(k - pc);
            let words = nc.div_ceil(NR) * panel_words(kind, kc, NR);
            with_scratch(0, words, |bp| {
                pack_b(kind, threads, bp, b.at(pc, jc), kc, nc);
                let step = Step {
                    kind,
                    a: a.at(0, pc),
                    bp,
                    c: MatMut {
                        ptr: c.ptr.add(jc * c.cs),
                        ..c
                    },
                    m,
                    kc,
                    nc,
                    accumulate: pc > 0,
                };
                run_step(&step, threads);
            });
        }
    }
}

/// A packing destination shared by the threads that fill disjoint parts of it.
#[derive(Clone, Copy, Debug)]
struct Dst(*mut u32);

impl Dst {
    /// The pointer (a method, so closures capture the whole `Dst`).
    fn get(self) -> *mut u32 {
        self.0
    }
}

// SAFETY: only used by `pack_b`, whose threads write disjoint panels.
unsafe impl Send for Dst {}
// SAFETY: as above.
unsafe impl Sync for Dst {}

/// Packs the `kc x nc` block `b` into `bp` (B~), its column panels split over up to
/// `threads` threads.
///
/// # Safety
/// As `pack::pack_b_f32` / `pack::pack_b_bf16` for the whole block.
unsafe fn pack_b(kind: Kind, threads: usize, bp: *mut u32, b: Mat, kc: usize, nc: usize) {
    let np = nc.div_ceil(NR);
    let bpw = panel_words(kind, kc, NR);
    let parts = threads.min(np).max(1);
    let mut ids: Vec<usize> = (0..parts).collect();
    let (dst, b) = (Dst(bp), pack::Shared(b));
    crate::cpu::parallel::for_each_chunk_mut(&mut ids, 1, kc * nc, |range, _| {
        for t in range {
            let panels = split(np, parts, t);
            let cols = (panels.end * NR).min(nc) - panels.start * NR;
            // SAFETY: the panels of the parts are disjoint, inside B~ and the block of B.
            unsafe {
                let d = dst.get().add(panels.start * bpw);
                let src = b.get().at(0, panels.start * NR);
                match kind {
                    Kind::F32 => pack::pack_b_f32::<false>(d.cast(), src, kc, cols),
                    Kind::F32Rounded => pack::pack_b_f32::<true>(d.cast(), src, kc, cols),
                    Kind::Bf16 => pack::pack_b_bf16(d, src, kc, cols),
                }
            }
        }
    });
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..units`.
fn split(units: usize, parts: usize, i: usize) -> Range<usize> {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// Computes one step's tiles, split over up to `threads` threads by row panels (or, when C
/// has few row panels, by column panels).
fn run_step(s: &Step, threads: usize) {
    let (mp, np) = (s.m.div_ceil(MR), s.nc.div_ceil(NR));
    let (tr, tc) = if threads <= 1 {
        (1, 1)
    } else if mp >= 2 * threads || mp >= np {
        (threads.min(mp), 1)
    } else {
        (1, threads.min(np))
    };
    let mut ids: Vec<usize> = (0..tr * tc).collect();
    // One unit of work per 16 multiply-adds: parts below ~1M of them stay on this thread.
    let work = (s.m * s.nc).saturating_mul(s.kc) / 16;
    crate::cpu::parallel::for_each_chunk_mut(&mut ids, 1, work, |range, _| {
        for t in range {
            // SAFETY: the parts' tiles are disjoint (distinct row or column panels).
            unsafe { run_part(s, split(mp, tr, t / tc), split(np, tc, t % tc)) };
        }
    });
}

/// The tiles of row panels `rows` and column panels `cols` of one step.
///
/// # Safety
/// `s` is a valid step, and no other thread writes these tiles.
unsafe fn run_part(s: &Step, rows: Range<usize>, cols: Range<usize>) {
    let (apw, bpw) = (panel_words(s.kind, s.kc, MR), panel_words(s.kind, s.kc, NR));
    for p0 in rows.clone().step_by(MC / MR) {
        let p1 = (p0 + MC / MR).min(rows.end);
        let i0 = p0 * MR;
        let mrows = (p1 * MR).min(s.m) - i0;
        with_scratch(1, (p1 - p0) * apw, |ap| {
            let asrc = s.a.at(i0, 0);
            match s.kind {
                Kind::F32 => pack::pack_a_f32::<false>(ap.cast(), asrc, mrows, s.kc),
                Kind::F32Rounded => pack::pack_a_f32::<true>(ap.cast(), asrc, mrows, s.kc),
                Kind::Bf16 => pack::pack_a_bf16(ap, asrc, mrows, s.kc),
            }
            for jp in cols.clone() {
                let j0 = jp * NR;
                let bpanel = s.bp.add(jp * bpw);
                for ip in 0..p1 - p0 {
                    let r0 = ip * MR;
                    let out = Out {
                        ptr: s.c.ptr.add((i0 + r0) * s.c.rs + j0 * s.c.cs),
                        rs: s.c.rs,
                        cs: s.c.cs,
                        rows: MR.min(mrows - r0),
                        cols: NR.min(s.nc - j0),
                        accumulate: s.accumulate,
                    };
                    let apanel = ap.add(ip * apw);
                    match s.kind {
                        Kind::F32 | Kind::F32Rounded => {
                            kernel_f32::kernel(s.kc, apanel.cast(), bpanel.cast(), &out)
                        }
                        Kind::Bf16 => kernel_bf16::kernel(s.kc.div_ceil(2), apanel, bpanel, &out),
                    }
                }
            }
        });
    }
}
