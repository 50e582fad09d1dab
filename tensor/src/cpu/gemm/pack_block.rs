//! Packing one `kc x nc` block of B into B~ for any [`Kind`], its column panels shared out
//! among the threads of a step that shares B~ (see [`super::packed`]).

use super::pack::{self, Mat};
use super::packed::{panel_words, split, Kind};
use super::row_sums::KSums;
use super::{pack_amx, pack_bf16, NR};
use std::vec::Vec;

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
/// `threads` threads, each adding the columns it packs into `sums` ([`Kind::F32`] only).
///
/// # Safety
/// As `pack::pack_b_f32` / `pack_bf16::pack_b_bf16` for the whole block; `sums` as
/// `KSums::add_run` for the block's columns.
pub(super) unsafe fn pack_b(
    kind: Kind,
    threads: usize,
    bp: *mut u32,
    b: Mat,
    kc: usize,
    nc: usize,
    sums: &KSums,
) {
    let np = nc.div_ceil(NR);
    let bpw = panel_words(kind, kc, NR);
    let parts = threads.min(np).max(1);
    let mut ids: Vec<usize> = (0..parts).collect();
    let (dst, b, sums) = (Dst(bp), pack::Shared(b), *sums);
    crate::cpu::parallel::for_each_chunk_mut(&mut ids, 1, kc * nc, |range, _| {
        for t in range {
            let panels = split(np, parts, t);
            let cols = (panels.end * NR).min(nc) - panels.start * NR;
            // SAFETY: the panels of the parts are disjoint, inside B~ and the block of B.
            unsafe {
                let d = dst.get().add(panels.start * bpw);
                let src = b.get().at(0, panels.start * NR);
                match kind {
                    Kind::F32 => {
                        let sums = sums.at_lane(panels.start * NR);
                        pack::pack_b_f32::<false>(d.cast(), src, kc, cols, &sums)
                    }
                    Kind::F32Rounded => {
                        pack::pack_b_f32::<true>(d.cast(), src, kc, cols, &KSums::NONE)
                    }
                    Kind::Bf16 => pack_bf16::pack_b_bf16(d, src, kc, cols),
                    Kind::Amx => pack_amx::pack_b(d, src, kc, cols),
                }
            }
        }
    });
}
