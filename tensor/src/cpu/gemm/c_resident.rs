//! The packed nest's loop order for a product of several `k` blocks whose packed B fits in
//! L2: blocks of rows outer, `k` blocks inner, so each block of C stays in cache across the
//! `k` blocks (see [`nest`]).

use super::pack::{Mat, MatMut};
use super::packed::{panel_words, run_part, with_scratch, KPart, Kind, Step};
use super::row_sums::Sums;
use super::{pack_block, NR};

/// Most bytes of B~ for [`nest`]: all of it is read again for every block of
/// rows, so it has to stay in L2 (2 MiB per core on the Xeons, 1 MiB on Zen 4) beside a
/// block of A~ and C.
const C_RESIDENT_MAX_B_BYTES: usize = 640 << 10;

/// Whether [`nest`] pays for one column block of `nc` over `k` values in blocks of
/// `kc_step`: B~ for all of `k` fits [`C_RESIDENT_MAX_B_BYTES`].
pub(super) fn pays(kind: Kind, k: usize, kc_step: usize, nc: usize) -> bool {
    let block_words = nc.div_ceil(NR) * panel_words(kind, kc_step, NR);
    k.div_ceil(kc_step) * block_words * 4 <= C_RESIDENT_MAX_B_BYTES
}

/// One thread's nest for a `k` of several blocks when B~ for all of them fits in L2: every
/// block of B is packed first, then each block of `MC` rows of C takes all the `k` blocks in
/// turn while its tiles stay in cache. The order over `k` blocks (in [`super::packed::nest`]: each `k`
/// block sweeps all of C, which for a tall C goes out to L3 and comes back for the next
/// block) is what changes; each element of C still gets the same block sums in the same
/// order, so the bits are [`super::packed::nest`]'s. (The products `dY W` of the backward, with `k` the
/// layer's wider side and `n` its narrow one, are this case.)
///
/// The operands are added into `sums` as they are packed, each lane's `k` blocks in order.
///
/// # Safety
/// As [`super::packed::gemm`]; `b` and `c` start at the column block, `nc` columns wide;
/// `sums` as `KSums::add_run` for A's rows and the block's columns of B.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn nest(
    kind: Kind,
    m: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    nc: usize,
    part: KPart,
    sums: &Sums,
) {
    let kc_step = part.step;
    let block_words = nc.div_ceil(NR) * panel_words(kind, kc_step, NR);
    let blocks = k.div_ceil(kc_step);
    with_scratch(0, blocks * block_words, |bp| {
        for (i, pc) in (0..k).step_by(kc_step).enumerate() {
            let kc = kc_step.min(k - pc);
            pack_block::pack_b(
                kind,
                1,
                bp.add(i * block_words),
                b.at(pc, 0),
                kc,
                nc,
                &sums.b,
            );
        }
        let (mp, np) = (m.div_ceil(kind.mr()), nc.div_ceil(NR));
        let panels_per_block = kind.mc() / kind.mr();
        for p0 in (0..mp).step_by(panels_per_block) {
            let rows = p0..(p0 + panels_per_block).min(mp);
            for (i, pc) in (0..k).step_by(kc_step).enumerate() {
                let kc = kc_step.min(k - pc);
                let step = Step {
                    kind,
                    a: a.at(0, pc),
                    bp: bp.add(i * block_words),
                    c,
                    m,
                    kc,
                    nc,
                    accumulate: pc > 0 || part.accumulate,
                    last: pc + kc == k,
                };
                run_part(&step, rows.clone(), 0..np, &sums.a);
            }
        }
    });
}
