//! The AVX512_BF16 microkernel: one `MR x NR` (14 x 32) tile of C from bf16 pairs.
//!
//! Same register tiling as the f32 kernel (28 zmm accumulators, two per row of the tile),
//! but each step covers two values of `k`: B's packed row pair is 32 columns x 2 bf16 = two
//! zmm, A's pair for row `i` is one `u32` broadcast to all lanes, and `vdpbf16ps` adds
//! `a(i, 2q) * b(2q, j) + a(i, 2q + 1) * b(2q + 1, j)` to lane `j` in f32. The products of
//! bf16 values are exact in f32; the sums round in f32. (The instruction treats bf16
//! subnormal inputs as zero and flushes subnormal results, unlike the f32 emulation.)
//! Written with `asm!` for the reason given in `kernel_f32.rs`.

use super::kernel_f32::{finish, prefetch_c, target, Out, Tile};
use super::NR;
use core::arch::asm;
use core::mem::MaybeUninit;

/// `C tile (+)= A panel x B panel` over `kc2` pairs of `k`.
///
/// # Safety
/// The CPU has AVX-512F and AVX512_BF16; `a` holds `MR * kc2` and `b` `NR * kc2` readable
/// `u32` pairs in the layout of `pack_bf16::pack_a_bf16` / `pack_bf16::pack_b_bf16`; `out` describes
/// writable elements of C not accessed by anything else during the call.
pub(super) unsafe fn kernel(kc2: usize, a: *const u32, b: *const u32, out: &Out) {
    prefetch_c(out);
    let mut tile = MaybeUninit::<Tile>::uninit();
    let (c, rs, acc, bias) = target(out, &mut tile, NR);
    // SAFETY: as in `kernel_f32::kernel`, with `MR * kc2` and `NR * kc2` u32 read.
    // Registers: rcx counts k steps, rsi/rdi walk the A/B panels, rdx is the tile's first
    // row, r8 the row stride in bytes, r9 the accumulate flag, r10 the row pointer, r14 the
    // bias (or 0; see `store_tile_14x32`).
    asm!(
        zero_tile_14x32!(),
        "test rcx, rcx",
        "jz 3f",
        "2:",
        "vmovups zmm28, [rdi]",
        "vmovups zmm29, [rdi + 64]",
        "vpbroadcastd zmm30, dword ptr [rsi + 0]",
        "vdpbf16ps zmm0, zmm30, zmm28",
        "vdpbf16ps zmm1, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 4]",
        "vdpbf16ps zmm2, zmm31, zmm28",
        "vdpbf16ps zmm3, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 8]",
        "vdpbf16ps zmm4, zmm30, zmm28",
        "vdpbf16ps zmm5, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 12]",
        "vdpbf16ps zmm6, zmm31, zmm28",
        "vdpbf16ps zmm7, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 16]",
        "vdpbf16ps zmm8, zmm30, zmm28",
        "vdpbf16ps zmm9, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 20]",
        "vdpbf16ps zmm10, zmm31, zmm28",
        "vdpbf16ps zmm11, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 24]",
        "vdpbf16ps zmm12, zmm30, zmm28",
        "vdpbf16ps zmm13, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 28]",
        "vdpbf16ps zmm14, zmm31, zmm28",
        "vdpbf16ps zmm15, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 32]",
        "vdpbf16ps zmm16, zmm30, zmm28",
        "vdpbf16ps zmm17, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 36]",
        "vdpbf16ps zmm18, zmm31, zmm28",
        "vdpbf16ps zmm19, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 40]",
        "vdpbf16ps zmm20, zmm30, zmm28",
        "vdpbf16ps zmm21, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 44]",
        "vdpbf16ps zmm22, zmm31, zmm28",
        "vdpbf16ps zmm23, zmm31, zmm29",
        "vpbroadcastd zmm30, dword ptr [rsi + 48]",
        "vdpbf16ps zmm24, zmm30, zmm28",
        "vdpbf16ps zmm25, zmm30, zmm29",
        "vpbroadcastd zmm31, dword ptr [rsi + 52]",
        "vdpbf16ps zmm26, zmm31, zmm28",
        "vdpbf16ps zmm27, zmm31, zmm29",
        "add rsi, 56",
        "add rdi, 128",
        "dec rcx",
        "jnz 2b",
        store_tile_14x32!(),
        inout("rcx") kc2 => _,
        inout("rsi") a => _,
        inout("rdi") b => _,
        in("rdx") c,
        in("r8") rs,
        in("r9") usize::from(acc),
        in("r14") bias,
        out("r10") _,
        clobber_abi("C"),
        options(nostack),
    );
    finish(&tile, out, NR);
}
