//! The no_std proof for Tessera: see `README.md` next to `Cargo.toml`.
//!
//! This binary is `#![no_std]` and `#![no_main]`, defines its own `#[panic_handler]` and
//! `#[global_allocator]`, and links only libc (for `write`/`_exit` and the C start-up code that
//! calls `main`). It depends on the core Tessera crates with `default-features = false`.
//! If any crate in its dependency graph links `std`, `std`'s panic handler collides with the
//! one below and the build fails (`found duplicate lang item `panic_impl``).
//!
//! It also computes something real on `Tensor<Cpu>` and checks the numbers:
//! - a small f32 matmul, softmax and a loss against values from PyTorch (float64, see
//!   `gen_expected.py`), and the gradients of that loss with respect to both matmul inputs,
//!   both through `tessera-autograd` (`Var::backward`) and written by hand from tensor ops,
//! - a larger f32 and f64 GEMM (odd sizes, several kernel tiles) against a naive triple loop,
//! - a layer_norm against a naive two-pass loop.
//!
//! Exit status 0 when everything matches, 1 on a mismatch or an error, 101 on a panic.
#![no_std]
#![no_main]

extern crate alloc;

// Link the core crates that nothing here calls yet: an `extern crate` loads the crate, so a
// `std` dependency anywhere in them is caught by the duplicate lang item.
extern crate tessera_nn as _;
extern crate tessera_ssl as _;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

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
// A bump allocator over a static arena. `dealloc` only gives memory back when the block is the
// most recent allocation, which is enough for this short-lived program.

const ARENA_SIZE: usize = 32 << 20;

#[repr(C, align(64))]
struct Arena {
    bytes: UnsafeCell<[u8; ARENA_SIZE]>,
    /// Offset of the first free byte.
    top: AtomicUsize,
}

// SAFETY: disjoint ranges of `bytes` are handed out through the atomic `top`.
unsafe impl Sync for Arena {}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.bytes.get() as *mut u8;
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            let addr = base as usize + top;
            let start = (addr + layout.align() - 1) & !(layout.align() - 1);
            let Some(end) = (start - base as usize).checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > ARENA_SIZE {
                return core::ptr::null_mut();
            }
            match self
                .top
                .compare_exchange_weak(top, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                // SAFETY: `start - base` is within the arena.
                Ok(_) => return unsafe { base.add(start - base as usize) },
                Err(t) => top = t,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let base = self.bytes.get() as *mut u8;
        let start = ptr as usize - base as usize;
        let end = start + layout.size();
        // Roll back only if this was the last block handed out; otherwise leak it.
        let _ = self
            .top
            .compare_exchange(end, start, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Arena = Arena {
    bytes: UnsafeCell::new([0; ARENA_SIZE]),
    top: AtomicUsize::new(0),
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
    let checks: [(&str, CheckFn); 4] = [
        (
            "matmul+softmax (+ hand-written backward)",
            matmul_softmax_and_gradients,
        ),
        ("autograd forward+backward", autograd_backward),
        ("gemm 67x131x45 f32/f64", gemm_vs_naive),
        ("layer_norm", layer_norm_vs_naive),
    ];
    let mut failed = 0;
    for (name, check) in checks {
        match check() {
            Ok(()) => outln!("nostd-check: {name}: ok"),
            Err(Failure::Tensor(e)) => {
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
    let used = ALLOC.top.load(Ordering::Relaxed);
    outln!("nostd-check: matmul+softmax OK (no_std + alloc, arena top {used} bytes)");
    0
}
