//! The AVX-512F f32 microkernel reading A where it lies: one `MR x NR` (14 x 32) tile of C
//! from 14 rows of row-major A (`cs == 1`) and an `NR`-column panel of packed B.
//!
//! Packing A pays for itself when each packed panel meets many column panels of B. When C is
//! only one or a few panels wide, it does not: the convolutions of a narrow ResNet multiply a
//! patch matrix of `n·oh·ow` rows by 16–128 output channels, and transposing every 14-row
//! panel of it into the packed layout took as long as the products (a quarter of the BYOL
//! small-ResNet step). This kernel is [`super::kernel_f32::kernel`] with one change: the 14
//! broadcasts read `a(i, p)` from the 14 rows themselves (three row pointers, `rsi`, `r11`,
//! `r12`, five rows apart, indexed by the row stride `rax` and three times it, `r13`), and
//! the pointers step by one f32 per `k`. Each C element still gets the same FMAs in the same
//! order, so the result is bit-identical to the packed path.

use super::kernel_f32::{finish, prefetch_c, target, Out, Tile};
use super::{MR, NR};
use crate::cpu::simd::prefetch_lines;
use core::arch::asm;
use core::mem::MaybeUninit;

/// Asks for the cache lines of the next 14 rows (`kc` f32 each from `a`, `rs` apart) while
/// the current tile computes. The kernel reads its 14 rows side by side, one f32 of each per
/// `k`, an access pattern the hardware prefetchers follow poorly; without this the rows of a
/// patch matrix just written by im2row arrive one demand miss at a time.
#[inline(always)]
pub(super) fn prefetch_rows(a: *const f32, rs: usize, kc: usize) {
    for i in 0..MR {
        prefetch_lines(a.wrapping_add(i * rs), kc);
    }
}

/// `C tile (+)= A rows x B panel` over `kc` values of `k`, A read in place.
///
/// # Safety
/// The CPU has AVX-512F; `a` points at `a(0, 0)` of 14 rows `rs` f32 apart, each with `kc`
/// readable contiguous f32; `b` holds `NR * kc` readable f32 in the layout of
/// `pack::pack_b_f32` (`NR` columns); `out` describes writable elements of C not accessed by anything else
/// during the call.
pub(super) unsafe fn kernel(kc: usize, a: *const f32, rs: usize, b: *const f32, out: &Out) {
    prefetch_c(out);
    let mut tile = MaybeUninit::<Tile>::uninit();
    let (c, crs, acc, bias) = target(out, &mut tile, NR);
    let rs_bytes = rs * 4;
    // SAFETY: reads `kc` f32 from each of the 14 rows at `a + i * rs` and `NR * kc` at `b`,
    // then (adds and) stores MR rows of NR f32 at `c` with a stride of `crs` bytes: C's tile
    // or `tile` (see `target`). Every vector register it uses is clobbered by
    // `clobber_abi("C")`.
    // Registers: rcx counts k steps, rsi/r11/r12 point at rows 0/5/10 of A at the current
    // k, rax is A's row stride in bytes and r13 three times it, rdi walks the B panel, rdx is
    // the tile's first row, r8 C's row stride in bytes, r9 the accumulate flag, r10 the row
    // pointer, r14 the bias (or 0; see `store_tile_14x32`).
    asm!(
        "lea r13, [rax + rax*2]",
        "lea r11, [rsi + rax*4]",
        "add r11, rax",
        "lea r12, [r11 + rax*4]",
        "add r12, rax",
        zero_tile_14x32!(),
        "test rcx, rcx",
        "jz 3f",
        "2:",
        "prefetcht0 [rdi + 1024]",
        "prefetcht0 [rdi + 1088]",
        "vmovups zmm28, [rdi]",
        "vmovups zmm29, [rdi + 64]",
        "vbroadcastss zmm30, dword ptr [rsi]",
        "vfmadd231ps zmm0, zmm30, zmm28",
        "vfmadd231ps zmm1, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + rax]",
        "vfmadd231ps zmm2, zmm31, zmm28",
        "vfmadd231ps zmm3, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + rax*2]",
        "vfmadd231ps zmm4, zmm30, zmm28",
        "vfmadd231ps zmm5, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [rsi + r13]",
        "vfmadd231ps zmm6, zmm31, zmm28",
        "vfmadd231ps zmm7, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [rsi + rax*4]",
        "vfmadd231ps zmm8, zmm30, zmm28",
        "vfmadd231ps zmm9, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [r11]",
        "vfmadd231ps zmm10, zmm31, zmm28",
        "vfmadd231ps zmm11, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [r11 + rax]",
        "vfmadd231ps zmm12, zmm30, zmm28",
        "vfmadd231ps zmm13, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [r11 + rax*2]",
        "vfmadd231ps zmm14, zmm31, zmm28",
        "vfmadd231ps zmm15, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [r11 + r13]",
        "vfmadd231ps zmm16, zmm30, zmm28",
        "vfmadd231ps zmm17, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [r11 + rax*4]",
        "vfmadd231ps zmm18, zmm31, zmm28",
        "vfmadd231ps zmm19, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [r12]",
        "vfmadd231ps zmm20, zmm30, zmm28",
        "vfmadd231ps zmm21, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [r12 + rax]",
        "vfmadd231ps zmm22, zmm31, zmm28",
        "vfmadd231ps zmm23, zmm31, zmm29",
        "vbroadcastss zmm30, dword ptr [r12 + rax*2]",
        "vfmadd231ps zmm24, zmm30, zmm28",
        "vfmadd231ps zmm25, zmm30, zmm29",
        "vbroadcastss zmm31, dword ptr [r12 + r13]",
        "vfmadd231ps zmm26, zmm31, zmm28",
        "vfmadd231ps zmm27, zmm31, zmm29",
        "add rsi, 4",
        "add r11, 4",
        "add r12, 4",
        "add rdi, 128",
        "dec rcx",
        "jnz 2b",
        store_tile_14x32!(),
        inout("rcx") kc => _,
        inout("rsi") a => _,
        in("rax") rs_bytes,
        inout("rdi") b => _,
        in("rdx") c,
        in("r8") crs,
        in("r9") usize::from(acc),
        in("r14") bias,
        out("r10") _,
        out("r11") _,
        out("r12") _,
        out("r13") _,
        clobber_abi("C"),
        options(nostack),
    );
    finish(&tile, out, NR);
}
