//! The blocked loop nest over packed panels and its split over threads (see the docs of
//! [`super`] for the nest and why).

use super::amx::{self, KC_AMX, MC_AMX, MR_AMX};
use super::c_resident;
use super::kernel_f32::{add_bias, Out};
use super::kernel_f32_narrow::{self, NR_NARROW};
use super::orientation::transposing_pays;
use super::pack::{self, Mat, MatMut};
use super::pack_bf16;
use super::pack_block;
use super::row_sums::{KSums, Sums};
use super::{
    kernel_bf16, kernel_f32, kernel_f32_rows, pack_amx, small, KC_BF16, KC_F32, MC, MR, NC, NR,
};
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
    /// bf16 tile panels, the AMX kernel (`amx.rs`).
    Amx,
}

impl Kind {
    /// Rows of C per kernel call.
    pub(super) fn mr(self) -> usize {
        if self == Kind::Amx {
            MR_AMX
        } else {
            MR
        }
    }

    /// Rows of C per packed block of A.
    pub(super) fn mc(self) -> usize {
        if self == Kind::Amx {
            MC_AMX
        } else {
            MC
        }
    }

    /// Most values of `k` per block.
    fn kc_max(self) -> usize {
        match self {
            Kind::F32 | Kind::F32Rounded => KC_F32,
            Kind::Bf16 => KC_BF16,
            Kind::Amx => KC_AMX,
        }
    }
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
pub(super) fn with_scratch<R>(slot: usize, words: usize, f: impl FnOnce(*mut u32) -> R) -> R {
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
pub(super) fn panel_words(kind: Kind, kc: usize, lanes: usize) -> usize {
    match kind {
        Kind::Bf16 => pack_bf16::pairs_len(kc, lanes),
        Kind::F32 | Kind::F32Rounded => kc * lanes,
        Kind::Amx => amx::panel_words(kc),
    }
}

/// One `(jc, pc)` step of the nest, shared by the threads computing its tiles.
#[derive(Clone, Copy, Debug)]
pub(super) struct Step {
    pub kind: Kind,
    /// A at `(0, pc)`, `m x kc`.
    pub a: Mat,
    /// B~: the packed `kc x nc` block.
    pub bp: *const u32,
    /// C at `(0, jc)`, `m x nc`.
    pub c: MatMut,
    pub m: usize,
    pub kc: usize,
    pub nc: usize,
    pub accumulate: bool,
    /// This is the last `k` block: C's sums are complete after it (and its bias is added).
    pub last: bool,
}

// SAFETY: a `Step` is shared by the threads of one step only while its pointers are valid
// (inside `gemm`); they read A and B~ and write disjoint tiles of C (see `run_part`).
unsafe impl Send for Step {}
// SAFETY: as above.
unsafe impl Sync for Step {}

/// The operands of one product, shared by the threads that compute disjoint parts of C.
#[derive(Clone, Copy, Debug)]
struct Operands {
    a: Mat,
    b: Mat,
    c: MatMut,
    sums: Sums,
}

impl Operands {
    /// The operands (a method, so closures capture the whole `Operands`).
    fn get(self) -> Self {
        self
    }
}

// SAFETY: only used by `gemm`, whose threads read A and B and write disjoint blocks of C
// while the caller keeps all three valid.
unsafe impl Send for Operands {}
// SAFETY: as above.
unsafe impl Sync for Operands {}

/// `C = A B` through the packed kernels. `k >= 1`, `m, n >= 1`.
///
/// Threaded, C is cut along its longer side into one block of whole panels per thread, and
/// each thread runs the whole loop nest on its block, packing what it needs itself: no
/// thread waits for another between `k` blocks, and every packed panel stays in the cache
/// of the core that uses it. The price is that each thread packs all of the operand on the
/// shorter side, which is small next to its share of the work unless both `m` and `n` are
/// small. (Sharing one packed B between threads, as [`nest`] does when C has fewer panels
/// than threads, ran the weight-gradient products `dYᵀ X`, whose `k` is every token of the
/// batch, at 55-65% of MKL on a 2-core Xeon: two fork-joins per `k` block, and half of each
/// block read from the other core's cache.) Each element of C is computed the same way
/// whichever block it falls in, so the result does not depend on the thread count.
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
    if takes_small(kind, threaded, m, k, n, c.bias.is_null()) {
        // SAFETY: as this function's, and the CPU has what `small` needs (checked).
        return unsafe { small::gemm(m, k, n, a, b, c) };
    }
    let part = KPart::whole(kind, k);
    gemm_k_part(kind, threaded, m, k, n, a, b, c, part, Sums::NONE)
}

/// Whether [`gemm`] hands this product to the small-product kernels (`small.rs`) instead of
/// the packed nest.
pub(super) fn takes_small(
    kind: Kind,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    no_bias: bool,
) -> bool {
    kind == Kind::F32 && no_bias && small::takes(threaded, m, k, n) && small::available()
}

/// How the packed nest cuts one call's `k` values into blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct KPart {
    /// Values of `k` per block; the call's last block may be shorter.
    pub step: usize,
    /// Whether the first block adds to C (else it overwrites C, as every block after it adds).
    pub accumulate: bool,
}

impl KPart {
    /// The blocks of a whole product of depth `k`: equal blocks of even length (so bf16 pairs
    /// never straddle two), at most the kind's `kc`.
    pub(super) fn whole(kind: Kind, k: usize) -> KPart {
        let step = k.div_ceil(k.div_ceil(kind.kc_max())).next_multiple_of(2);
        KPart {
            step,
            accumulate: false,
        }
    }
}

/// The packed nest over `k` values cut into `part`'s blocks, in whichever orientation pads
/// less (never the small-product kernels). Called on consecutive ranges of a product's `k`,
/// each a whole number of the product's blocks ([`KPart::whole`]) except the last, with
/// `accumulate` after the first, it gives C the bits of one [`gemm`] call: each block's sums
/// go to C in the same order. With `sums` (only in [`Kind::F32`], for an operand the packs
/// copy in runs; see `row_sums.rs`), the packs also add up that operand over `k`.
///
/// # Safety
/// As [`gemm`]; with `part.accumulate` every element of C holds a value to add to; `sums`
/// as `KSums::add_run` for each operand's lanes.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn gemm_k_part(
    kind: Kind,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    part: KPart,
    sums: Sums,
) {
    if transposing_pays(kind, m, n) && c.bias.is_null() {
        // Cᵀ = Bᵀ Aᵀ: the same sums, on fewer padded tiles.
        let (at, bt) = (b.transposed(), a.transposed());
        let ct = MatMut {
            rs: c.cs,
            cs: c.rs,
            ..c
        };
        return gemm_oriented(kind, threaded, n, k, m, at, bt, ct, part, sums.transposed());
    }
    gemm_oriented(kind, threaded, m, k, n, a, b, c, part, sums)
}

/// [`gemm`] in the orientation given.
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_oriented(
    kind: Kind,
    threaded: bool,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    part: KPart,
    sums: Sums,
) {
    let threads = if threaded {
        crate::cpu::parallel::num_threads()
    } else {
        1
    };
    let mr = kind.mr();
    let (mp, np) = (m.div_ceil(mr), n.div_ceil(NR));
    let by_rows = mp >= np;
    let panels = if by_rows { mp } else { np };
    if threads <= 1 || panels < threads {
        nest(kind, threads, m, k, n, a, b, c, part, sums);
        return;
    }
    let ops = Operands { a, b, c, sums };
    let mut ids: Vec<usize> = (0..threads).collect();
    // One unit of work per 16 multiply-adds, as `run_step`: small products stay on this thread.
    let work = (m * n).saturating_mul(k) / 16;
    crate::cpu::parallel::for_each_chunk_mut(&mut ids, 1, work, |range, _| {
        let Operands { a, b, c, sums } = ops.get();
        for t in range {
            let p = split(panels, threads, t);
            // SAFETY: the blocks are disjoint whole panels of C inside it, with the rows of
            // A or the columns of B they need; each thread sums lanes no other thread sums
            // (of the operand every thread packs whole, a share of them).
            unsafe {
                if by_rows {
                    let (r0, r1) = (p.start * mr, (p.end * mr).min(m));
                    let sums = Sums {
                        a: sums.a.at_lane(r0),
                        b: sums.b.only(split(n, threads, t)),
                    };
                    nest(
                        kind,
                        1,
                        r1 - r0,
                        k,
                        n,
                        a.at(r0, 0),
                        b,
                        c.at(r0, 0),
                        part,
                        sums,
                    );
                } else {
                    let (c0, c1) = (p.start * NR, (p.end * NR).min(n));
                    let sums = Sums {
                        a: sums.a.only(split(m, threads, t)),
                        b: sums.b.at_lane(c0),
                    };
                    nest(
                        kind,
                        1,
                        m,
                        k,
                        c1 - c0,
                        a,
                        b.at(0, c0),
                        c.at(0, c0),
                        part,
                        sums,
                    );
                }
            }
        }
    });
}

/// The loop nest on `threads` threads that share each packed B block (see the module docs).
///
/// # Safety
/// As [`gemm`].
#[allow(clippy::too_many_arguments)]
unsafe fn nest(
    kind: Kind,
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    part: KPart,
    sums: Sums,
) {
    let kc_step = part.step;
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        // A is packed again for each column block: its rows are summed in the first.
        let sums = Sums {
            a: if jc == 0 { sums.a } else { KSums::NONE },
            b: sums.b.at_lane(jc),
        };
        if threads <= 1 && k > kc_step && c_resident::pays(kind, k, kc_step, nc) {
            c_resident::nest(kind, m, k, a, b.at(0, jc), c.at(0, jc), nc, part, &sums);
            continue;
        }
        for pc in (0..k).step_by(kc_step) {
            let kc = kc_step.min(k - pc);
            let words = nc.div_ceil(NR) * panel_words(kind, kc, NR);
            with_scratch(0, words, |bp| {
                pack_block::pack_b(kind, threads, bp, b.at(pc, jc), kc, nc, &sums.b);
                let step = Step {
                    kind,
                    a: a.at(0, pc),
                    bp,
                    c: c.at(0, jc),
                    m,
                    kc,
                    nc,
                    accumulate: pc > 0 || part.accumulate,
                    last: pc + kc == k,
                };
                run_step(&step, threads, &sums.a);
            });
        }
    }
}

/// The `i`-th of `parts` near-equal contiguous ranges of `0..units`.
pub(super) fn split(units: usize, parts: usize, i: usize) -> Range<usize> {
    let (q, r) = (units / parts, units % parts);
    let start = i * q + i.min(r);
    start..start + q + usize::from(i < r)
}

/// Computes one step's tiles, split over up to `threads` threads by row panels (or, when C
/// has few row panels, by column panels), A's rows summed into `sums` by the parts of the
/// first column panels.
fn run_step(s: &Step, threads: usize, sums: &KSums) {
    let (mp, np) = (s.m.div_ceil(s.kind.mr()), s.nc.div_ceil(NR));
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
            let sums = if t % tc == 0 { sums } else { &KSums::NONE };
            // SAFETY: the parts' tiles are disjoint (distinct row or column panels), and so
            // are the rows they sum.
            unsafe { run_part(s, split(mp, tr, t / tc), split(np, tc, t % tc), sums) };
        }
    });
}

/// Most column panels of C for which the f32 path reads row-major A in place
/// (`kernel_f32_rows.rs`) instead of packing it: packing costs about as much per element of A
/// as one panel's products, so it pays only when a packed panel meets several B panels.
/// Measured on the BYOL small-ResNet step (its convolutions have 16-128 output channels, 1-4
/// panels), one thread, AMD Zen 4: reading in place up to 1, 2, 4 and 8 panels ran the step
/// 1.17x, 1.20x, 1.22x and 1.07x as fast as always packing.
const ROWS_KERNEL_MAX_PANELS: usize = 4;

/// Fewest rows of A for the in-place read: a small A sits in L1 whichever way it is read, and
/// packing it keeps the kernel's loads contiguous (attention's per-head products, 17-197
/// rows, measured the same either way on the default DINO step).
const ROWS_KERNEL_MIN_ROWS: usize = MC;

/// The tiles of row panels `rows` and column panels `cols` of one step, the rows of A it
/// packs added into `sums` (for [`Kind::F32`] with a column-major A only).
///
/// # Safety
/// `s` is a valid step, no other thread writes these tiles, and `sums` as
/// `KSums::add_run` for these rows of A.
pub(super) unsafe fn run_part(s: &Step, rows: Range<usize>, cols: Range<usize>, sums: &KSums) {
    let (mr, mc) = (s.kind.mr(), s.kind.mc());
    // Whole MR-row panels of row-major A are read in place when C is narrow; a last partial
    // panel is still packed (zero-padded).
    let in_place = s.kind == Kind::F32
        && s.a.cs == 1
        && cols.len() <= ROWS_KERNEL_MAX_PANELS
        && s.m >= ROWS_KERNEL_MIN_ROWS;
    let (apw, bpw) = (panel_words(s.kind, s.kc, mr), panel_words(s.kind, s.kc, NR));
    // The AMX tile configuration, loaded once for all of this part's kernel calls.
    // SAFETY: `Kind::Amx` is chosen only where `amx::available()`.
    let tiles = (s.kind == Kind::Amx).then(|| unsafe { amx::Tiles::configure() });
    for p0 in rows.clone().step_by(mc / mr) {
        let p1 = (p0 + mc / mr).min(rows.end);
        let i0 = p0 * mr;
        let mrows = (p1 * mr).min(s.m) - i0;
        with_scratch(1, (p1 - p0) * apw, |ap| {
            let asrc = s.a.at(i0, 0);
            let whole = mrows / mr;
            match s.kind {
                Kind::F32 if in_place => {
                    if whole < p1 - p0 {
                        let (dst, src) = (ap.add(whole * apw).cast(), s.a.at(i0 + whole * mr, 0));
                        let rest = mrows - whole * mr;
                        pack::pack_a_f32::<false>(dst, src, rest, s.kc, &KSums::NONE);
                    }
                }
                Kind::F32 => {
                    let sums = sums.at_lane(i0);
                    pack::pack_a_f32::<false>(ap.cast(), asrc, mrows, s.kc, &sums)
                }
                Kind::F32Rounded => {
                    pack::pack_a_f32::<true>(ap.cast(), asrc, mrows, s.kc, &KSums::NONE)
                }
                Kind::Bf16 => pack_bf16::pack_a_bf16(ap, asrc, mrows, s.kc),
                Kind::Amx => pack_amx::pack_a(ap, asrc, mrows, s.kc),
            }
            for jp in cols.clone() {
                let j0 = jp * NR;
                let bpanel = s.bp.add(jp * bpw);
                for ip in 0..p1 - p0 {
                    let r0 = ip * mr;
                    // The bias, after the last `k` block: the 14 x 32 kernels add it before
                    // they store the tile; after the others (`plain`), `add_bias` does.
                    let bias = match s.last && !s.c.bias.is_null() {
                        true => s.c.bias.add(j0),
                        false => core::ptr::null(),
                    };
                    let out = Out {
                        ptr: s.c.ptr.add((i0 + r0) * s.c.rs + j0 * s.c.cs),
                        rs: s.c.rs,
                        cs: s.c.cs,
                        rows: mr.min(mrows - r0),
                        cols: NR.min(s.nc - j0),
                        accumulate: s.accumulate,
                        bias,
                    };
                    let plain = Out {
                        bias: core::ptr::null(),
                        ..out
                    };
                    let apanel = ap.add(ip * apw);
                    // The last column panel may hold at most 16 columns of C: a 14 x 16 tile.
                    let narrow = out.cols <= NR_NARROW;
                    let bias_added = match s.kind {
                        Kind::F32 if in_place && ip < whole => {
                            if jp == cols.start && ip + 1 < whole {
                                let next = s.a.at(i0 + r0 + mr, 0);
                                kernel_f32_rows::prefetch_rows(next.ptr, next.rs, s.kc);
                            }
                            let (a, b) = (s.a.at(i0 + r0, 0), bpanel.cast());
                            if narrow {
                                kernel_f32_narrow::kernel_rows(s.kc, a.ptr, a.rs, b, &plain);
                                false
                            } else {
                                kernel_f32_rows::kernel(s.kc, a.ptr, a.rs, b, &out);
                                true
                            }
                        }
                        Kind::F32 | Kind::F32Rounded if narrow => {
                            kernel_f32_narrow::kernel(s.kc, apanel.cast(), bpanel.cast(), &plain);
                            false
                        }
                        Kind::F32 | Kind::F32Rounded => {
                            kernel_f32::kernel(s.kc, apanel.cast(), bpanel.cast(), &out);
                            true
                        }
                        Kind::Bf16 => {
                            kernel_bf16::kernel(s.kc.div_ceil(2), apanel, bpanel, &out);
                            true
                        }
                        Kind::Amx => {
                            let tiles = tiles.as_ref().expect("configured above for Kind::Amx");
                            amx::kernel(tiles, amx::kpad(s.kc), apanel, bpanel, &plain);
                            false
                        }
                    };
                    if !bias_added && !bias.is_null() {
                        add_bias(&plain, bias);
                    }
                }
            }
        });
    }
}
