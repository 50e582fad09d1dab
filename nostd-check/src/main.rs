//! The no_std proof for Tessera: see `README.md` next to `Cargo.toml`.
//!
//! This binary is `#![no_std]` and `#![no_main]`, defines its own `#[panic_handler]` and
//! `#[global_allocator]` (size classes over a static arena), and links only libc (for `write`/`_exit` and the C start-up code that
//! calls `main`). It depends on the core Tessera crates with `default-features = false`.
//! If any crate in its dependency graph links `std`, `std`'s panic handler collides with the
//! one below and the build fails (`found duplicate lang item `panic_impl``).
//!
//! It also computes something real on `Tensor<Cpu>` and checks the numbers:
//! - a small f32 matmul, softmax and a loss against values from PyTorch (float64, see
//!   `gen_expected.py`), and the gradients of that loss with respect to both matmul inputs,
//!   both through `tessera-autograd` (`Var::backward`) and written by hand from tensor ops,
//! - a larger f32 and f64 GEMM (odd sizes, several kernel tiles) against a naive triple loop,
//! - a layer_norm against a naive two-pass loop,
//! - five DINO training steps on a tiny ViT (`dino_steps.rs`: weights from the
//!   `include_bytes!` safetensors blob `dino/student.safetensors`, multi-crop augmentation,
//!   teacher and student forward, DINO loss, backward, AdamW, teacher EMA) against the
//!   numbers the same code computes under std (`dino/expected.rs`, written by `reference/`).
//!
//! Exit status 0 when everything matches, 1 on a mismatch or an error, 101 on a panic.
#![no_std]
#![no_main]

extern crate alloc;

/// The DINO training steps, shared with the std reference (`reference/src/main.rs`).
mod dino_steps;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use tessera_autograd::Var;
use tessera_tensor::{Cpu, Tensor};

// ---------------------------------------------------------------------------------------------
// libc: output and exit. The C runtime's start-up code (crt1.o) calls `main` below.

#[link(name = "c")]
extern "C" {
    fn write(fd: c_int, buf: *const u8, count: usize) -> isize;
    fn _exit(status: c_int) -> !;
}

/// `core::fmt::Write` over a file descriptor (1 = stdout, 2 = stderr).
struct Fd(c_int);

impl Write for Fd {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            // SAFETY: `bytes` is a valid, initialized buffer of `bytes.len()` bytes.
            let n = unsafe { write(self.0, bytes.as_ptr(), bytes.len()) };
            if n <= 0 {
                return Err(fmt::Error);
            }
            bytes = &bytes[n as usize..];
        }
        Ok(())
    }
}

macro_rules! outln {
    ($($arg:tt)*) => {{ let _ = writeln!(Fd(1), $($arg)*); }};
}
macro_rules! errln {
    ($($arg:tt)*) => {{ let _ = writeln!(Fd(2), $($arg)*); }};
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    errln!("nostd-check: panic: {info}");
    // SAFETY: `_exit` terminates the process; it has no preconditions.
    unsafe { _exit(101) }
}

// The prebuilt `core`/`alloc` of the stable toolchain are compiled with `panic = "unwind"`, so
// their unwind tables name these two symbols even though nothing here can unwind (this binary
// is built with `panic = "abort"`). `std` would provide them; without it, stubs that are never
// called satisfy the linker.

/// Never called: no frame in this binary unwinds.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

/// Never called: no frame in this binary unwinds.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    errln!("nostd-check: _Unwind_Resume called with panic = \"abort\"");
    // SAFETY: `_exit` terminates the process; it has no preconditions.
    unsafe { _exit(134) }
}

// ---------------------------------------------------------------------------------------------
// The global allocator: power-of-two size classes over a static arena, with a free list per
// class. A block is carved from the arena the first time its class is needed and goes back
// to its class's free list on `dealloc`, so a loop that frees what it allocated (a training
// step) reuses memory instead of growing. A spin lock makes it `Sync`; this program has one
// thread.

/// Bytes in the arena (a zero-initialized static: the OS maps its pages on first touch).
const ARENA_SIZE: usize = 32 << 20;
/// The largest alignment served (the arena's own).
const MAX_ALIGN: usize = 4096;
/// The smallest block: room for the free list's next pointer, and 16-byte alignment.
const MIN_BLOCK: usize = 16;

/// The allocator's bookkeeping, behind `Arena::lock`.
struct State {
    /// Offset of the first byte never handed out.
    top: usize,
    /// Bytes in blocks currently allocated (whole blocks, rounding included).
    in_use: usize,
    /// Head of the free list of each class (`free[k]`: blocks of `1 << k` bytes), linked
    /// through each free block's first word.
    free: [*mut u8; usize::BITS as usize],
}

#[repr(C, align(4096))]
struct Arena {
    bytes: UnsafeCell<[u8; ARENA_SIZE]>,
    state: UnsafeCell<State>,
    lock: AtomicBool,
}

// SAFETY: `state` is only touched with `lock` held, and blocks of `bytes` are handed out to one
// owner at a time through it.
unsafe impl Sync for Arena {}

/// The block size for `layout`: a power of two, at least its size, its alignment and
/// `MIN_BLOCK`; `None` when too large or over-aligned.
fn block_size(layout: Layout) -> Option<usize> {
    if layout.align() > MAX_ALIGN {
        return None;
    }
    layout
        .size()
        .max(layout.align())
        .max(MIN_BLOCK)
        .checked_next_power_of_two()
        .filter(|&b| b <= ARENA_SIZE)
}

impl Arena {
    /// Runs `f` on the state with the lock held.
    fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference to the state.
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }

    /// `(top, in_use)`: the arena's high-water mark and the bytes allocated now.
    fn usage(&self) -> (usize, usize) {
        self.with_state(|s| (s.top, s.in_use))
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(size) = block_size(layout) else {
            return core::ptr::null_mut();
        };
        let class = size.trailing_zeros() as usize;
        let base = self.bytes.get() as *mut u8;
        self.with_state(|s| {
            let head = s.free[class];
            let block = if !head.is_null() {
                // SAFETY: a free block of this class starts with the next free block's address
                // (written by `dealloc`), and blocks are at least `MIN_BLOCK` bytes, aligned.
                s.free[class] = unsafe { *(head as *mut *mut u8) };
                head
            } else {
                // Carve a new block, aligned to its size (up to `MAX_ALIGN`; the arena is
                // `MAX_ALIGN`-aligned), so that it serves any layout of its class.
                let align = size.min(MAX_ALIGN);
                let start = (s.top + align - 1) & !(align - 1);
                match start.checked_add(size) {
                    Some(end) if end <= ARENA_SIZE => {
                        s.top = end;
                        // SAFETY: `start + size <= ARENA_SIZE`: within the arena.
                        unsafe { base.add(start) }
                    }
                    _ => return core::ptr::null_mut(),
                }
            };
            s.in_use += size;
            block
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `layout` is the one `ptr` was allocated with, so this is its block size.
        let Some(size) = block_size(layout) else {
            return;
        };
        let class = size.trailing_zeros() as usize;
        self.with_state(|s| {
            // SAFETY: `ptr` is a block of `size >= MIN_BLOCK` bytes, aligned to at least 16,
            // that its owner gave back: its first word is ours to use as the list link.
            unsafe { *(ptr as *mut *mut u8) = s.free[class] };
            s.free[class] = ptr;
            s.in_use -= size;
        })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Same class: the block already has room (GlobalAlloc keeps the alignment).
        // SAFETY: the caller guarantees that `new_size`, rounded up to `layout.align()`, does
        // not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if block_size(layout).is_some() && block_size(layout) == block_size(new_layout) {
            return ptr;
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least `min(old, new)` bytes and do not overlap.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOC: Arena = Arena {
    bytes: UnsafeCell::new([0; ARENA_SIZE]),
    state: UnsafeCell::new(State {
        top: 0,
        in_use: 0,
        free: [core::ptr::null_mut(); usize::BITS as usize],
    }),
    lock: AtomicBool::new(false),
};

// ---------------------------------------------------------------------------------------------
// The checks.

/// Inputs and PyTorch (float64) results, printed by `gen_expected.py`.
mod expected {
    pub const A: [f32; 20] = [
        -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, -0.75,
        -0.5, -0.25, 0.0, 0.25, 0.5,
    ];
    pub const B: [f32; 15] = [
        -1.0, 0.0, 1.0, 0.5, -1.0, 0.0, -0.5, 0.5, -1.0, 1.0, -0.5, 0.5, 0.0, 1.0, -0.5,
    ];
    pub const W: [f32; 12] = [
        -1.5, 0.5, -1.5, -0.5, 1.5, -0.5, 0.5, -1.5, 0.5, 1.5, -0.5, 1.5,
    ];
    pub const C: [f64; 12] = [
        0.625, 0.625, -0.625, -0.25, -1.125, 1.125, 0.625, -1.125, 0.25, 0.625, 0.625, -0.625,
    ];
    pub const P: [f64; 12] = [
        0.4373487435378189,
        0.4373487435378189,
        0.12530251292436217,
        0.18615253224502962,
        0.0775999205599317,
        0.7362475471950388,
        0.5373272589824355,
        0.09337347671679642,
        0.36929926430076804,
        0.4373487435378189,
        0.4373487435378189,
        0.12530251292436217,
    ];
    pub const LOSS: f64 = -0.03154711231372967;
    pub const DA: [f64; 20] = [
        0.2729460537690156,
        -0.6834235636015289,
        0.5469505367170211,
        -0.6834235636015289,
        0.5469505367170211,
        -0.0853746589210703,
        -0.1576017674922924,
        0.20028909695282754,
        -0.15760176749229238,
        0.20028909695282754,
        -0.03137871609835735,
        0.21948185543112508,
        -0.20379249738194644,
        0.21948185543112508,
        -0.2037924973819464,
        -0.2729460537690156,
        0.6834235636015289,
        -0.5469505367170211,
        0.6834235636015289,
        -0.5469505367170211,
    ];
    pub const DB: [f64; 15] = [
        0.08119154002281007,
        -0.051459237142831044,
        -0.029732302879979,
        0.09905488631863606,
        -0.057997585979626134,
        -0.04105730033900988,
        0.16747720861431759,
        -0.3150595399280053,
        0.1475823313136877,
        0.18534055491014362,
        -0.32159788876480044,
        0.13625733385465685,
        0.027601501135331913,
        -0.031844190632445535,
        0.004242689497113615,
    ];
}

/// Why a check failed.
enum Failure {
    Tensor(tessera_tensor::Error),
    Dino(dino_steps::Error),
    Mismatch,
}

impl From<tessera_tensor::Error> for Failure {
    fn from(e: tessera_tensor::Error) -> Self {
        Failure::Tensor(e)
    }
}

type Check = core::result::Result<(), Failure>;
type CheckFn = fn() -> Check;

/// Compares `got` with `want` elementwise: `|got - want| <= atol + rtol * |want|`.
fn close(what: &str, got: &[f64], want: &[f64], atol: f64, rtol: f64) -> Check {
    if got.len() != want.len() {
        errln!(
            "nostd-check: {what}: {} values, expected {}",
            got.len(),
            want.len()
        );
        return Err(Failure::Mismatch);
    }
    let mut bad = 0usize;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs(); // false for NaN
        if !ok {
            if bad < 5 {
                errln!("nostd-check: {what}[{i}] = {g}, expected {w}");
            }
            bad += 1;
        }
    }
    if bad > 0 {
        errln!("nostd-check: {what}: {bad} of {} values differ", got.len());
        return Err(Failure::Mismatch);
    }
    Ok(())
}

/// `softmax(A @ B)`, `loss = sum(softmax(A @ B) * W)` and its gradients against PyTorch.
fn matmul_softmax_and_gradients() -> Check {
    use expected::*;
    let cpu = Cpu;
    let a = Tensor::from_slice(&A, &[4, 5], &cpu)?;
    let b = Tensor::from_slice(&B, &[5, 3], &cpu)?;
    let w = Tensor::from_slice(&W, &[4, 3], &cpu)?;

    let c = a.matmul(&b)?;
    close("matmul", &c.to_f64_vec()?, &C, 1e-6, 1e-6)?;
    let p = c.softmax(-1)?;
    close("softmax", &p.to_f64_vec()?, &P, 1e-6, 1e-5)?;
    let rows = p.sum(&[-1], false)?.to_f64_vec()?;
    close("softmax row sums", &rows, &[1.0; 4], 1e-6, 0.0)?;
    let loss = p.mul(&w)?.sum_all()?.item()?;
    close("loss", &[loss], &[LOSS], 1e-6, 1e-5)?;

    // Backward by hand: dL/dP = W; softmax: dC = P * (W - sum(P * W, -1));
    // matmul: dA = dC @ B^T, dB = A^T @ dC (transposes are strided views, not copies).
    let dc = p.mul(&w.sub(&p.mul(&w)?.sum(&[-1], true)?)?)?;
    let da = dc.matmul(&b.t()?)?;
    let db = a.t()?.matmul(&dc)?;
    close("dA", &da.to_f64_vec()?, &DA, 1e-6, 1e-5)?;
    close("dB", &db.to_f64_vec()?, &DB, 1e-6, 1e-5)?;
    Ok(())
}

/// The same loss through `tessera-autograd`: a forward and a backward pass with no std.
fn autograd_backward() -> Check {
    use expected::*;
    let cpu = Cpu;
    let a = Var::leaf(Tensor::from_slice(&A, &[4, 5], &cpu)?);
    let b = Var::leaf(Tensor::from_slice(&B, &[5, 3], &cpu)?);
    let w = Var::constant(Tensor::from_slice(&W, &[4, 3], &cpu)?);
    let loss = a.matmul(&b)?.softmax(-1)?.mul(&w)?.sum_all()?;
    close(
        "autograd loss",
        &[loss.value().item()?],
        &[LOSS],
        1e-6,
        1e-5,
    )?;
    let grads = loss.backward()?;
    let (Some(da), Some(db)) = (grads.get(&a), grads.get(&b)) else {
        errln!("nostd-check: autograd: no gradient for a leaf");
        return Err(Failure::Mismatch);
    };
    close("autograd dA", &da.to_f64_vec()?, &DA, 1e-6, 1e-5)?;
    close("autograd dB", &db.to_f64_vec()?, &DB, 1e-6, 1e-5)?;
    Ok(())
}

/// Deterministic values in [-1, 1) from a 64-bit LCG.
fn lcg(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// An `[m, k] @ [k, n]` GEMM with sizes that are not multiples of any kernel tile, in f32 and
/// f64, against a naive triple loop in f64.
fn gemm_vs_naive() -> Check {
    let (m, k, n) = (67, 131, 45);
    let a64 = lcg(m * k, 1);
    let b64 = lcg(k * n, 2);
    // Round the inputs to f32 first so both precisions multiply the same numbers.
    let a32: Vec<f32> = a64.iter().map(|&x| x as f32).collect();
    let b32: Vec<f32> = b64.iter().map(|&x| x as f32).collect();
    let a64: Vec<f64> = a32.iter().map(|&x| x as f64).collect();
    let b64: Vec<f64> = b32.iter().map(|&x| x as f64).collect();
    let mut want = alloc::vec![0.0f64; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a64[i * k + p];
            for j in 0..n {
                want[i * n + j] += x * b64[p * n + j];
            }
        }
    }
    let cpu = Cpu;
    let a = Tensor::from_vec(a32, &[m, k], &cpu)?;
    let b = Tensor::from_vec(b32, &[k, n], &cpu)?;
    close("gemm f32", &a.matmul(&b)?.to_f64_vec()?, &want, 1e-4, 1e-4)?;
    let a = Tensor::from_vec(a64, &[m, k], &cpu)?;
    let b = Tensor::from_vec(b64, &[k, n], &cpu)?;
    close(
        "gemm f64",
        &a.matmul(&b)?.to_f64_vec()?,
        &want,
        1e-12,
        1e-12,
    )?;
    Ok(())
}

/// `layer_norm` over the last axis (no affine, eps 1e-6) against a naive two-pass loop.
fn layer_norm_vs_naive() -> Check {
    let (rows, d) = (7, 96);
    let x: Vec<f32> = lcg(rows * d, 3).iter().map(|&v| (v * 3.0) as f32).collect();
    let eps = 1e-6;
    let mut want = alloc::vec![0.0f64; rows * d];
    for r in 0..rows {
        let row = &x[r * d..(r + 1) * d];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row
            .iter()
            .map(|&v| (v as f64 - mean) * (v as f64 - mean))
            .sum::<f64>()
            / d as f64;
        let inv = inv_sqrt(var + eps);
        for j in 0..d {
            want[r * d + j] = (row[j] as f64 - mean) * inv;
        }
    }
    let t = Tensor::from_vec(x, &[rows, d], &Cpu)?;
    let y = t.layer_norm(&[d], None, None, eps)?;
    close("layer_norm", &y.to_f64_vec()?, &want, 1e-5, 1e-5)?;
    Ok(())
}

/// The student's initial weights (`backbone.*`, `head.*`), written by
/// `reference -- --write-weights` with tessera-nn's checkpoint writer.
static STUDENT_WEIGHTS: &[u8] = include_bytes!("../dino/student.safetensors");

/// What the same steps compute under std (`reference -- --write-expected`).
const DINO_EXPECTED: dino_steps::Outcome = {
    use dino_steps::{Outcome, Summary};
    include!("../dino/expected.rs")
};

/// [`dino_steps::STEPS`] DINO training steps, each loss printed, against the std numbers
/// within [`dino_steps::RTOL`].
fn dino_training() -> Check {
    let got = dino_steps::run(STUDENT_WEIGHTS, &mut |step, loss| {
        let (top, in_use) = ALLOC.usage();
        outln!(
            "nostd-check: dino step {}/{}: loss {loss:?} (arena top {top} bytes, {in_use} in use)",
            step + 1,
            dino_steps::STEPS
        );
    })
    .map_err(Failure::Dino)?;
    let c = dino_steps::compare(&got, &DINO_EXPECTED);
    for (name, g, w) in &c.mismatches {
        errln!("nostd-check: dino {name} = {g:?}, expected (std) {w:?}");
    }
    outln!(
        "nostd-check: dino vs std: max relative difference {:e} (tolerance {:e}), \
         bit-identical: {}",
        c.max_rel,
        dino_steps::RTOL,
        if c.bit_identical { "yes" } else { "no" }
    );
    if !c.mismatches.is_empty() {
        return Err(Failure::Mismatch);
    }
    Ok(())
}

/// `1 / sqrt(x)` for `x > 0` by Newton's method (no libm here, to stay independent of the
/// crates under test).
fn inv_sqrt(x: f64) -> f64 {
    // Start below the root so the iteration converges monotonically.
    let mut y = 1.0;
    while x * y * y > 1.0 {
        y *= 0.5;
    }
    for _ in 0..100 {
        y = y * (1.5 - 0.5 * x * y * y);
    }
    y
}

#[no_mangle]
pub extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    let checks: [(&str, CheckFn); 5] = [
        (
            "matmul+softmax (+ hand-written backward)",
            matmul_softmax_and_gradients,
        ),
        ("autograd forward+backward", autograd_backward),
        ("gemm 67x131x45 f32/f64", gemm_vs_naive),
        ("layer_norm", layer_norm_vs_naive),
        ("dino training, 5 steps, vs std", dino_training),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => outln!("nostd-check: {name}: ok"),
            Err(Failure::Tensor(e)) => {
                errln!("nostd-check: {name}: error: {e}");
                failed += 1;
            }
            Err(Failure::Dino(e)) => {
                errln!("nostd-check: {name}: error: {e}");
                failed += 1;
            }
            Err(Failure::Mismatch) => {
                errln!("nostd-check: {name}: MISMATCH");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        errln!("nostd-check: {failed} check(s) FAILED");
        return 1;
    }
    let (top, _) = ALLOC.usage();
    outln!("nostd-check: all checks OK (no_std + alloc, arena top {top} bytes)");
    0
}
