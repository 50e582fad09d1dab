//! A process-wide memory budget for large allocations.
//!
//! Every allocation whose size comes from a caller (a shape passed to [`Tensor::zeros`], an
//! output a kernel sizes from its inputs) is checked here first, so that a request that is too
//! large becomes an [`Error::Device`] naming the op, the bytes asked for and the limit, instead
//! of an allocator abort or a capacity-overflow panic. Code outside tensors that sizes a buffer
//! from its input (a decoded image, a decompressed file, a block of k-NN similarities) asks
//! [`check_bytes`] first, with the same limit and the same kind of message.
//!
//! ## Where the limit comes from
//! There is always a hard bound of `isize::MAX` bytes (what Rust can allocate at all). Below
//! that, the budget is, in order:
//! 1. whatever [`set_memory_limit`] set (`None`: no budget beyond `isize::MAX`);
//! 2. with the `std` feature, the environment variable `TESSERA_MEMORY_LIMIT`: a size such as
//!    `8G`, `512M`, `64k`, `1.5T` or a plain number of bytes (binary units: `1K` = 1024 bytes;
//!    a trailing `B`/`iB` is allowed), or `none` for no budget. A value that is not a size
//!    makes every non-empty check fail with a message saying so, rather than being ignored;
//! 3. with `std` on Linux, the machine's physical memory (`MemTotal` in `/proc/meminfo`, or
//!    the cgroup's `memory.max` if that is lower, as in a container): a single request larger
//!    than the whole machine can never succeed, and asking the allocator for it would abort
//!    the process (or, with overcommit, thrash until killed);
//! 4. otherwise (no `std`, or no `/proc/meminfo`) none.
//!
//! The default (2–4) is worked out once, on the first check. It bounds each single
//! allocation, not the sum of live ones: the tensors of a model are many allocations, and the
//! system allocator stays the judge of their total (the CPU backend's allocations are
//! fallible, see [`crate::cpu::pool`], so a refusal there is an error too).
//!
//! The state is a few atomic words, so it works without `std` (only pointer-width core
//! atomics).
//!
//! [`Tensor::zeros`]: crate::Tensor::zeros

use crate::{DType, Error, Result};
use alloc::string::String;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The limit in bytes; `usize::MAX` stands for "none" (the `isize::MAX` bound still holds).
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Where [`LIMIT`] came from (the `SRC_*` values); `SRC_UNSET` until the first use.
static SOURCE: AtomicU8 = AtomicU8::new(SRC_UNSET);

const SRC_UNSET: u8 = 0;
/// The default is being worked out by one thread; others wait for it.
const SRC_BUSY: u8 = 1;
const SRC_NONE: u8 = 2;
const SRC_EXPLICIT: u8 = 3;
const SRC_ENV: u8 = 4;
const SRC_ENV_INVALID: u8 = 5;
const SRC_PHYSICAL: u8 = 6;

/// The environment variable that sets the default budget (with the `std` feature).
pub const MEMORY_LIMIT_ENV: &str = "TESSERA_MEMORY_LIMIT";

/// Works out the default budget once (see the module docs), unless already known.
fn ensure_init() {
    loop {
        match SOURCE.compare_exchange(SRC_UNSET, SRC_BUSY, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => {
                let (limit, src) = default_limit();
                LIMIT.store(limit.unwrap_or(usize::MAX), Ordering::Relaxed);
                SOURCE.store(src, Ordering::Release);
                return;
            }
            // Another thread is reading the environment: its answer is ours too.
            Err(SRC_BUSY) => core::hint::spin_loop(),
            Err(_) => return,
        }
    }
}

/// The default budget and its source: `TESSERA_MEMORY_LIMIT`, else physical memory.
#[cfg(feature = "std")]
fn default_limit() -> (Option<usize>, u8) {
    match std::env::var(MEMORY_LIMIT_ENV) {
        Ok(v) if v.trim().eq_ignore_ascii_case("none") => (None, SRC_NONE),
        Ok(v) => match parse_size(&v) {
            Some(b) => (Some(b), SRC_ENV),
            // Fail every check rather than silently run without the budget the user asked for.
            None => (Some(0), SRC_ENV_INVALID),
        },
        Err(std::env::VarError::NotUnicode(_)) => (Some(0), SRC_ENV_INVALID),
        Err(std::env::VarError::NotPresent) => match physical_memory() {
            Some(b) => (Some(b), SRC_PHYSICAL),
            None => (None, SRC_NONE),
        },
    }
}

#[cfg(not(feature = "std"))]
fn default_limit() -> (Option<usize>, u8) {
    (None, SRC_NONE)
}

/// `MemTotal` from `/proc/meminfo` in bytes, lowered to the cgroup (v2) limit of this
/// process's container if there is one (`None` where there is no `/proc/meminfo`).
#[cfg(feature = "std")]
fn physical_memory() -> Option<usize> {
    let total = mem_total()?;
    // "max" (no limit) or no cgroup v2 file: the machine's memory.
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)))
}

#[cfg(feature = "std")]
fn mem_total() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Parses a size in bytes: a number (decimals allowed with a unit) followed by an optional
/// binary unit `K`, `M`, `G` or `T` (case-insensitive, optionally followed by `B` or `iB`),
/// e.g. `8G`, `512MiB`, `1.5t`, `4096`. `None` if it is not one, or overflows `usize`.
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    match num.split_once('.') {
        None => num.parse::<usize>().ok()?.checked_mul(1usize << shift),
        Some((int, frac)) => {
            // A fraction of a unit: exact enough in f64 for any size a machine has.
            if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
                return None;
            }
            let v: f64 = num.parse().ok()?;
            let bytes = v * (1u64 << shift) as f64;
            (bytes.is_finite() && bytes < usize::MAX as f64).then_some(bytes as usize)
        }
    }
}

/// Sets the largest single allocation, in bytes, that may be requested (`None`: no limit
/// beyond `isize::MAX`). Applies to the whole process and overrides the default (module docs).
pub fn set_memory_limit(bytes: Option<usize>) {
    // After the default is settled, so that a concurrent first use cannot overwrite this.
    ensure_init();
    LIMIT.store(bytes.unwrap_or(usize::MAX), Ordering::Relaxed);
    SOURCE.store(
        if bytes.is_some() {
            SRC_EXPLICIT
        } else {
            SRC_NONE
        },
        Ordering::Release,
    );
}

/// The budget in bytes, if any: the one set by [`set_memory_limit`], else the default (see
/// the module docs).
pub fn memory_limit() -> Option<usize> {
    ensure_init();
    match LIMIT.load(Ordering::Relaxed) {
        usize::MAX => None,
        b => Some(b),
    }
}

/// Where the budget comes from, for messages.
fn limit_source() -> String {
    ensure_init();
    match SOURCE.load(Ordering::Acquire) {
        SRC_EXPLICIT => "set_memory_limit".into(),
        SRC_ENV => MEMORY_LIMIT_ENV.into(),
        SRC_ENV_INVALID => {
            crate::__format!("{MEMORY_LIMIT_ENV} is set but is not a size like 8G, 512M or none")
        }
        SRC_PHYSICAL => {
            crate::__format!("the machine's physical memory; set {MEMORY_LIMIT_ENV} to change it")
        }
        _ => "isize::MAX".into(),
    }
}

/// `bytes` as a short human-readable size (`1.5 GiB`).
pub fn format_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        crate::__format!("{bytes} B")
    } else {
        crate::__format!("{v:.1} {}", UNITS[u])
    }
}

/// The effective bound on one allocation: the budget, capped at `isize::MAX`.
pub fn allocation_bound() -> usize {
    memory_limit().map_or(isize::MAX as usize, |l| l.min(isize::MAX as usize))
}

/// Checks that `bytes` bytes (`None`: more than `usize::MAX`) may be allocated for `what`:
/// an [`Error::Device`] naming `what`, the size asked for and the limit if not.
fn check(what: &str, asked: Option<usize>, detail: &str) -> Result<()> {
    let limit = allocation_bound();
    match asked {
        Some(b) if b <= limit => Ok(()),
        _ => {
            let asked = asked.map_or_else(
                || "more than usize::MAX bytes".into(),
                |b| crate::__format!("{b} bytes = {}", format_bytes(b)),
            );
            let source = if memory_limit().is_some() {
                limit_source()
            } else {
                "isize::MAX".into()
            };
            Err(Error::Device {
                msg: crate::__format!(
                    "{what}: cannot allocate {detail}({asked}): the limit is {limit} bytes = {} \
                     ({source})",
                    format_bytes(limit)
                ),
            })
        }
    }
}

/// Checks that `elements` elements of `dtype` may be allocated by `op`: an error naming the op,
/// the bytes asked for and the limit if the size overflows, exceeds `isize::MAX` bytes or
/// exceeds the budget.
pub fn check_alloc(op: &str, elements: usize, dtype: DType) -> Result<()> {
    check(
        op,
        elements.checked_mul(dtype.size_in_bytes()),
        &crate::__format!("{elements} {dtype} elements "),
    )
}

/// Checks that a buffer of `bytes` bytes that is not a tensor (a decoded image, a decompressed
/// file, a block of similarities) may be allocated for `what`: an error naming `what`, the
/// bytes asked for and the limit if it exceeds the budget. `bytes` is `None` when computing the
/// size overflowed (use `checked_mul`), which is always an error.
///
/// ```
/// use tessera_tensor::memory::check_bytes;
/// assert!(check_bytes("decoded image", Some(1 << 20)).is_ok());
/// let e = check_bytes("decoded image", None).unwrap_err();
/// assert!(e.to_string().contains("decoded image"));
/// ```
pub fn check_bytes(what: &str, bytes: Option<usize>) -> Result<()> {
    check(what, bytes, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size(" 512MiB "), Some(512 << 20));
        assert_eq!(parse_size("64kb"), Some(64 << 10));
        assert_eq!(parse_size("1.5t"), Some(3 << 39));
        assert_eq!(parse_size("0.5K"), Some(512));
        assert_eq!(parse_size("2 GB"), Some(2 << 30));
        for bad in [
            "",
            "G",
            "8X",
            "-1",
            "1..5G",
            ".",
            "8G8",
            "99999999999999999999999T",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bytes_format_for_people() {
        assert_eq!(format_bytes(100), "100 B");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
        assert_eq!(format_bytes(4 << 40), "4.0 TiB");
    }
}
