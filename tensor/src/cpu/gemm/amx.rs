//! The Intel AMX microkernel: one [`MR_AMX`] x [`NR`] (32 x 32) block of C from bf16 tiles.
//!
//! AMX (Advanced Matrix Extensions, Sapphire Rapids and later) adds eight 1 KiB tile
//! registers `tmm0..tmm7` and `tdpbf16ps`, which multiplies a 16 x 32 bf16 tile of A by a
//! 32 x 16 bf16 tile of B and adds the 16 x 16 f32 products to a third tile: 8,192
//! multiply-adds per instruction, and at one instruction per 16 cycles 512 per cycle, sixteen
//! times a core's two AVX-512 FMA ports.
//! The kernel keeps C's 32 x 32 block in four accumulator tiles (`tmm0..tmm3`), and each
//! step over 32 values of `k` loads two tiles of A (`tmm4`, `tmm5`: rows 0-15 and 16-31) and
//! two of B (`tmm6`, `tmm7`: columns 0-15 and 16-31) and issues four `tdpbf16ps`.
//!
//! Operand layouts (`pack_amx.rs` writes them):
//! - A: row-major bf16, 32 rows of `kp` values (`kp` = the `k` block rounded up to 32, the
//!   padding zero), so a tile is 16 rows of 64 bytes with a row stride of `2 kp` bytes.
//! - B: "VNNI" pairs, the layout of the `vdpbf16ps` kernel: row `q` holds, for each of the 32
//!   columns, the `u32` of `(b(2q, j), b(2q + 1, j))`; a tile is 16 such rows of 16 columns
//!   (64 bytes) with a row stride of 128 bytes.
//!
//! Like `vdpbf16ps`, `tdpbf16ps` treats bf16 subnormal inputs as zero and flushes subnormal
//! results. The order of the f32 sums inside one instruction is the hardware's; every element
//! of C is computed by the same instruction sequence wherever its tile falls, so results do
//! not depend on the thread count.
//!
//! The tile registers need a configuration (`ldtilecfg`, one per thread, [`Tiles`]) and, on
//! Linux, the process's permission to use the 8 KiB of tile state (`arch_prctl`, asked once
//! in [`available`]). Written with `asm!` for the reason given in `kernel_f32.rs` (and the
//! AMX intrinsics are not stable at all).

use super::kernel_f32::Out;
use super::NR;
use core::arch::asm;
use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
use core::mem::MaybeUninit;

/// Rows of C per kernel call (two 16-row tiles).
pub const MR_AMX: usize = 32;
/// Most values of `k` in one block. A's and B's panels (32 x 384 bf16, 24 KiB each) fill a
/// 48 KiB L1 together. Each `k` block reads and writes all of C, which comes from memory, so
/// a longer block saves more C traffic than it loses to L1 misses: on a Sapphire Rapids
/// guest the ViT-S/16 training step ran 4-6% faster at 384 than at 256, 512 was between
/// and 768 level with 384 (a kernel alone on L1-resident panels, without C, ran 1.1 TFLOP/s
/// per core at 256 and 0.76 at 512).
pub const KC_AMX: usize = 384;
/// Rows of C per packed block of A (a multiple of [`MR_AMX`]; 160 x 384 bf16 = 120 KiB, L2).
pub const MC_AMX: usize = 5 * MR_AMX;

/// `k` values per tile step.
const KT: usize = 32;

/// `kc` rounded up to whole tile steps: the `k` length of a packed panel.
pub fn kpad(kc: usize) -> usize {
    kc.next_multiple_of(KT)
}

/// u32 words of one packed panel of 32 rows (A) or 32 columns (B) over `kc` values of `k`.
pub fn panel_words(kc: usize) -> usize {
    MR_AMX * kpad(kc) / 2
}

/// Whether this CPU and OS run the AMX kernel: AMX-TILE and AMX-BF16 (and AVX512_BF16 and
/// AVX512BW, which the packing uses), and the kernel granted the tile state. Checked once.
pub fn available() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let ok = super::has_avx512bf16() && cpu_has_amx_bf16() && request_tile_state();
            STATE.store(1 + u8::from(ok), Ordering::Relaxed);
            ok
        }
        s => s == 2,
    }
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
fn cpu_has_amx_bf16() -> bool {
    use core::arch::x86_64::{__cpuid, __cpuid_count};
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 7 is read only if the CPU reports it.
    unsafe {
        if __cpuid(0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }
}

/// Asks Linux for the AMX tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
/// XFEATURE_XTILEDATA)`, kernel 5.16+). Without it the first tile instruction is a SIGILL.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: a plain system call; it only changes which register state the process may use.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false // other OSes: not wired up; the vdpbf16ps path serves them
}

/// The tile configuration of this kernel, loaded on this thread for as long as it lives.
pub struct Tiles(());

/// `ldtilecfg`'s 64-byte operand: palette 1, eight tiles of 16 rows x 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

const CONFIG: TileConfig = {
    let mut c = [0u8; 64];
    c[0] = 1; // palette 1
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64; // bytes per row (u16, little-endian)
        c[48 + t] = 16; // rows
        t += 1;
    }
    TileConfig(c)
};

impl Tiles {
    /// Configures the tile registers on this thread.
    ///
    /// # Safety
    /// [`available`] returned true.
    pub unsafe fn configure() -> Tiles {
        // SAFETY: the caller checked AMX; the operand is a valid palette-1 configuration.
        asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly));
        Tiles(())
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a configuration exists (`configure`); releasing it returns the tile state
        // to its initial, cheap-to-switch form.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// Asks for the lines of `rows` rows of 32 f32 at `c` (row stride `rs` elements): a block of
/// C about to be read or written.
#[inline(always)]
pub fn prefetch_block(c: *const f32, rs: usize, rows: usize) {
    for i in 0..rows {
        let p = c.wrapping_add(i * rs) as *const i8;
        // SAFETY: prefetches never fault; the addresses are only hints.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
}

/// A whole 32 x 32 block of C, row-major: the kernel's target for edge blocks and strided C.
#[repr(C, align(64))]
struct Block([[f32; NR]; MR_AMX]);

/// `C block (+)= A panel x B panel` over `kp` (a multiple of 32) values of `k`. With
/// `out.accumulate` the accumulators start from C, else from zero.
///
/// # Safety
/// `_tiles` is this thread's configuration; `a` holds `MR_AMX * kp / 2` and `b` `NR * kp / 2`
/// readable u32 in the layouts above; `out` (at most 32 x 32) describes writable elements of C
/// not accessed by anything else during the call.
pub unsafe fn kernel(_tiles: &Tiles, kp: usize, a: *const u32, b: *const u32, out: &Out) {
    let direct = out.rows == MR_AMX && out.cols == NR && out.cs == 1;
    if direct {
        // C's block is read (accumulate) or written after the k loop: fetch its lines now.
        prefetch_block(out.ptr, out.rs, MR_AMX);
    }
    let mut block = MaybeUninit::<Block>::uninit();
    let (c, rs) = if direct {
        (out.ptr, out.rs * 4)
    } else {
        let t = block.as_mut_ptr().cast::<f32>();
        if out.accumulate {
            core::ptr::write_bytes(t, 0, MR_AMX * NR);
            for i in 0..out.rows {
                let (src, dst) = (out.ptr.add(i * out.rs), t.add(i * NR));
                if out.cs == 1 {
                    core::ptr::copy_nonoverlapping(src, dst, out.cols);
                } else {
                    for j in 0..out.cols {
                        *dst.add(j) = *src.add(j * out.cs);
                    }
                }
            }
        }
        (t, NR * 4)
    };
    // SAFETY: reads 32 rows of `2 kp` bytes at `a` and `kp / 2` rows of 128 bytes at `b`;
    // reads (with accumulate) and writes 32 rows of 128 bytes at `c` with a stride of `rs`
    // bytes: C's block or `block`. Tile registers and the GPRs used are declared clobbered.
    // Registers: rcx counts tile steps, rsi/rdi walk A's two tiles, rdx walks B, r8 is A's
    // row stride, r9 the accumulate flag, r10 C's row stride, r11 C's second half, rax 128.
    asm!(
        "lea r11, [{c} + 8 * r10]",
        "lea r11, [r11 + 8 * r10]",
        "test r9, r9",
        "jz 2f",
        "tileloadd tmm0, [{c} + r10]",
        "tileloadd tmm1, [{c} + r10 + 64]",
        "tileloadd tmm2, [r11 + r10]",
        "tileloadd tmm3, [r11 + r10 + 64]",
        "jmp 3f",
        "2:",
        "tilezero tmm0",
        "tilezero tmm1",
        "tilezero tmm2",
        "tilezero tmm3",
        "3:",
        "tileloadd tmm4, [rsi + r8]",
        "tileloadd tmm5, [rdi + r8]",
        "tileloadd tmm6, [rdx + rax]",
        "tileloadd tmm7, [rdx + rax + 64]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        "add rsi, 64",
        "add rdi, 64",
        "add rdx, 2048",
        "dec rcx",
        "jnz 3b",
        "tilestored [{c} + r10], tmm0",
        "tilestored [{c} + r10 + 64], tmm1",
        "tilestored [r11 + r10], tmm2",
        "tilestored [r11 + r10 + 64], tmm3",
        c = in(reg) c,
        inout("rcx") kp / KT => _,
        inout("rsi") a => _,
        inout("rdi") a.cast::<u16>().add(16 * kp) => _,
        inout("rdx") b => _,
        in("r8") 2 * kp,
        in("r9") usize::from(out.accumulate),
        in("r10") rs,
        out("r11") _,
        in("rax") 128usize,
        out("tmm0") _,
        out("tmm1") _,
        out("tmm2") _,
        out("tmm3") _,
        out("tmm4") _,
        out("tmm5") _,
        out("tmm6") _,
        out("tmm7") _,
        options(nostack),
    );
    if !direct {
        let t = block.as_ptr().cast::<f32>();
        for i in 0..out.rows {
            let (src, dst) = (t.add(i * NR), out.ptr.add(i * out.rs));
            if out.cs == 1 {
                core::ptr::copy_nonoverlapping(src, dst, out.cols);
            } else {
                for j in 0..out.cols {
                    *dst.add(j * out.cs) = *src.add(j);
                }
            }
        }
    }
}
