//! The CPU backend's buffer cache: freed storages are kept by their allocation size and handed
//! to the next kernel that asks for that size or a bit less (best fit, at most [`SLACK`]
//! times larger), so a steady training loop, which asks for the same sizes every step, stops
//! calling the system allocator (PyTorch: the CUDA caching allocator; here it is simpler,
//! since the CPU has no streams to order reuse against). Kernel scratch (gathered views,
//! temporaries) comes from and returns to the same cache.
//!
//! A block is a raw allocation with its `(bytes, align)`; a `Vec<T>` can be rebuilt over it
//! for any `T` with that alignment whose size divides `bytes`, which is exactly what
//! `Vec::from_raw_parts` requires. Blocks beyond [`cache_limit`] bytes are returned to the
//! system at once. [`stats`] counts fresh allocations and reuses (the training-step budget
//! test reads them).

use crate::{Error, HostBuffer, Result};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::mem::{align_of, size_of, ManuallyDrop};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A freed allocation: its address and how it was allocated.
struct Block {
    ptr: *mut u8,
}
// SAFETY: a block is an allocation nobody else references; it may be freed or reused from
// any thread.
unsafe impl Send for Block {}

struct Cache {
    /// `(bytes, align)` → free blocks of exactly that layout.
    free: BTreeMap<(usize, usize), Vec<Block>>,
    cached_bytes: usize,
}

/// A minimal spin lock: the critical sections are a map lookup, and `no_std` has no mutex.
struct Locked {
    busy: AtomicBool,
    cache: core::cell::UnsafeCell<Cache>,
}
// SAFETY: `cache` is only reached through `with`, which holds `busy`.
unsafe impl Sync for Locked {}

static CACHE: Locked = Locked {
    busy: AtomicBool::new(false),
    cache: core::cell::UnsafeCell::new(Cache {
        free: BTreeMap::new(),
        cached_bytes: 0,
    }),
};

/// A request may take a free block up to this many times its size (best fit): steps reuse
/// blocks across nearby sizes, which keeps the cache near the live working set (measured on
/// the default DINO run: peak RSS 2.17 GB with exact sizes, 2.10 GB with 2x, see BENCHMARKS.md).
pub const SLACK: usize = 2;

static FRESH: AtomicUsize = AtomicUsize::new(0);
static REUSED: AtomicUsize = AtomicUsize::new(0);
static UPLOADS: AtomicUsize = AtomicUsize::new(0);
static STORAGES: AtomicUsize = AtomicUsize::new(0);
static DOWNLOADS: AtomicUsize = AtomicUsize::new(0);

/// Counts one storage made by the CPU backend (a tensor's memory, as opposed to scratch).
pub(crate) fn count_storage() {
    STORAGES.fetch_add(1, Ordering::Relaxed);
}

/// Counts one `Backend::from_host` (`up`) or `Backend::to_host` (`!up`) of the CPU backend.
pub(crate) fn count_transfer(up: bool) {
    let c = if up { &UPLOADS } else { &DOWNLOADS };

    c.fetch_add(1, Ordering::Relaxed);
}
/// No limit by default, like PyTorch's caching allocator: a training loop's cache settles at
/// its peak working set. [`set_cache_limit`] bounds it.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    while CACHE
        .busy
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        core::hint::spin_loop();
    }
    // SAFETY: `busy` is held, so this is the only reference to the cache.
    let r = f(unsafe { &mut *CACHE.cache.get() });
    CACHE.busy.store(false, Ordering::Release);
    r
}

/// An empty vector with room for exactly `n` elements, from the cache when a freed block of
/// that size exists, else from the system allocator; an error naming `op` and the bytes if
/// the system refuses (a fallible reservation: never the allocator's abort).
pub(crate) fn take<T>(op: &str, n: usize) -> Result<Vec<T>> {
    let Some(bytes) = n.checked_mul(size_of::<T>()) else {
        return Err(refused(op, n, size_of::<T>()));
    };
    if bytes == 0 {
        return Ok(Vec::new());
    }
    let align = align_of::<T>();
    let size = size_of::<T>();
    // Best fit among the free blocks of this alignment that are at least `bytes` and at most
    // `SLACK` times larger (and hold a whole number of `T`s).
    let max = bytes.saturating_mul(SLACK);
    let block = with(|c| {
        let key = c
            .free
            .range((bytes, align)..=(max, align))
            .find(|((b, a), list)| *a == align && b % size == 0 && !list.is_empty())
            .map(|(k, _)| *k)?;
        let list = c.free.get_mut(&key)?;
        let b = list.pop();
        if list.is_empty() {
            c.free.remove(&key);
        }
        c.cached_bytes -= key.0;
        b.map(|b| (b, key.0))
    });
    match block {
        Some((b, block_bytes)) => {
            REUSED.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the block was allocated as a `Vec` of `block_bytes` bytes with alignment
            // `align_of::<T>()` (its key), and `size_of::<T>()` divides `block_bytes`, so it is
            // a valid allocation for `block_bytes / size_of::<T>() >= n` `T`s.
            Ok(unsafe { Vec::from_raw_parts(b.ptr.cast::<T>(), 0, block_bytes / size) })
        }
        None => {
            let mut v = Vec::new();
            // Cached blocks are memory this process holds but does not use: give them back and
            // try once more before reporting the system's refusal.
            if v.try_reserve_exact(n).is_err() {
                empty_cache();
                v.try_reserve_exact(n)
                    .map_err(|_| refused(op, n, size_of::<T>()))?;
            }
            FRESH.fetch_add(1, Ordering::Relaxed);
            Ok(v)
        }
    }
}

/// The error for an allocation of `n` elements of `size` bytes that the system refused.
fn refused(op: &str, n: usize, size: usize) -> Error {
    let asked = n.checked_mul(size).map_or_else(
        || "more than usize::MAX bytes".into(),
        |b| crate::__format!("{b} bytes = {}", crate::memory::format_bytes(b)),
    );
    Error::Device {
        msg: crate::__format!(
            "{op}: the system refused an allocation of {n} elements ({asked}); the memory \
             budget allows up to {} bytes per allocation",
            crate::memory::allocation_bound()
        ),
    }
}

/// `n` copies of `value` in a cached or fresh vector (an error as [`take`]'s).
pub(crate) fn filled<T: Clone>(op: &str, n: usize, value: T) -> Result<Vec<T>> {
    let mut v = take(op, n)?;
    // A plain loop over the spare capacity, which the compiler turns into vector stores
    // (`memset` for zeros); `Vec::resize` stays a scalar loop here and was 7% of a training
    // step when every GEMM output went through it.
    for slot in &mut v.spare_capacity_mut()[..n] {
        slot.write(value.clone());
    }
    // SAFETY: `take` reserved at least `n` elements, and the loop initialised the first `n`.
    unsafe { v.set_len(n) };
    Ok(v)
}

/// [`filled`] on every thread for large fills: one core's stores are far from the memory's
/// bandwidth (the zeros under a `select`'s gradient are 10 MB per block in the default DINO
/// step's backward). Fills below 256 K elements stay on the calling thread.
pub(crate) fn filled_parallel<T: Clone + Send + Sync>(
    op: &str,
    n: usize,
    value: T,
) -> Result<Vec<T>> {
    let mut v = take(op, n)?;
    let work = n / 4; // one unit of parallel work per four stores
    crate::cpu::parallel::for_each_chunk_mut(
        &mut v.spare_capacity_mut()[..n],
        1,
        work,
        |_, part| {
            for slot in part {
                slot.write(value.clone());
            }
        },
    );
    // SAFETY: `take` reserved at least `n` elements, and the parts initialised all `n`.
    unsafe { v.set_len(n) };
    Ok(v)
}

/// [`take`] for kernel internals that cannot return an error yet (the parallel collector and
/// the kernels built on it): a refusal panics with [`take`]'s message instead of the
/// allocator's abort. Their sizes were checked against the budget before the kernel ran
/// ([`crate::memory`]), so this needs the system to refuse memory within the budget.
pub(crate) fn take_in_kernel<T>(n: usize) -> Vec<T> {
    take("cpu kernel", n).unwrap_or_else(|e| panic!("{e}"))
}

/// [`filled`] for kernel internals, as [`take_in_kernel`].
pub(crate) fn filled_in_kernel<T: Clone>(n: usize, value: T) -> Vec<T> {
    filled("cpu kernel", n, value).unwrap_or_else(|e| panic!("{e}"))
}

/// Gives a vector's allocation back to the cache (or to the system past the limit).
pub(crate) fn give<T>(v: Vec<T>) {
    let bytes = v.capacity() * size_of::<T>();
    // Only plain numbers are cached: anything with drop glue is dropped as usual.
    if bytes == 0 || core::mem::needs_drop::<T>() {
        return;
    }
    if bytes > LIMIT.load(Ordering::Relaxed) {
        return; // dropped: freed now
    }
    let mut v = ManuallyDrop::new(v);
    // SAFETY: `T` has no drop glue (checked above), so forgetting the elements is fine.
    unsafe { v.set_len(0) };
    let ptr = v.as_mut_ptr().cast::<u8>();
    let key = (bytes, align_of::<T>());
    let overflow = with(|c| {
        if c.cached_bytes + bytes > LIMIT.load(Ordering::Relaxed) {
            return true;
        }
        c.cached_bytes += bytes;
        c.free.entry(key).or_default().push(Block { ptr });
        false
    });
    if overflow {
        // SAFETY: rebuilds exactly the vector taken apart above, which then frees itself.
        drop(unsafe { Vec::from_raw_parts(ptr.cast::<T>(), 0, bytes / size_of::<T>()) });
    }
}

/// Gives a host buffer's allocation back to the cache.
pub(crate) fn give_buffer(b: HostBuffer) {
    crate::with_buffer!(b, v => give(v))
}

/// What the cache has done since the process started (or the last [`reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Storages (tensor memory) the CPU backend made, fresh or from the cache.
    pub storages: usize,
    /// Allocations that went to the system allocator.
    pub fresh_allocations: usize,
    /// Allocations served from a freed block.
    pub reused: usize,
    /// Bytes held in freed blocks right now.
    pub cached_bytes: usize,
    /// Host buffers handed to the backend (`Backend::from_host`): on a device, uploads.
    pub uploads: usize,
    /// Views copied out to the host (`Backend::to_host`): on a device, reads that wait.
    pub downloads: usize,
}

/// The cache's counters (PyTorch: `torch.cuda.memory_stats`).
pub fn stats() -> PoolStats {
    PoolStats {
        storages: STORAGES.load(Ordering::Relaxed),
        fresh_allocations: FRESH.load(Ordering::Relaxed),
        reused: REUSED.load(Ordering::Relaxed),
        cached_bytes: with(|c| c.cached_bytes),
        uploads: UPLOADS.load(Ordering::Relaxed),
        downloads: DOWNLOADS.load(Ordering::Relaxed),
    }
}

/// Sets the counters of [`stats`] to zero.
pub fn reset_stats() {
    for c in [&STORAGES, &FRESH, &REUSED, &UPLOADS, &DOWNLOADS] {
        c.store(0, Ordering::Relaxed);
    }
}

/// The most bytes the cache keeps in freed blocks.
pub fn cache_limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Sets [`cache_limit`]; 0 disables caching. Blocks already cached stay until [`empty_cache`].
pub fn set_cache_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Returns every cached block to the system (PyTorch: `torch.cuda.empty_cache()`).
pub fn empty_cache() {
    let free = with(|c| {
        c.cached_bytes = 0;
        core::mem::take(&mut c.free)
    });
    for ((bytes, align), blocks) in free {
        for b in blocks {
            // SAFETY: every block was a `Vec` allocation of exactly this size and alignment.
            unsafe {
                alloc::alloc::dealloc(
                    b.ptr,
                    core::alloc::Layout::from_size_align_unchecked(bytes, align),
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_block_serves_the_next_request_of_its_size() {
        let v: Vec<f32> = take("test", 12_347).unwrap();
        let p = v.as_ptr();
        give(v);
        let w: Vec<f32> = take("test", 12_347).unwrap();
        assert_eq!(w.as_ptr(), p);
        assert_eq!(w.capacity(), 12_347);
        assert!(w.is_empty());
        // Same bytes and alignment, another element type: also valid.
        give(w);
        let u: Vec<u32> = take("test", 12_347).unwrap();
        assert_eq!(u.capacity(), 12_347);
        give(u);
        let z = filled("test", 7, 2.5f64).unwrap();
        assert_eq!(z, alloc::vec![2.5; 7]);
    }

    /// Used to abort the process (`Vec::with_capacity`): a reservation the system refuses is
    /// an error naming the op and the bytes. Only where the kernel refuses what it cannot back
    /// (Linux's default heuristic overcommit); with `vm.overcommit_memory = 1` the untouched
    /// reservation is granted and simply given back.
    #[cfg(feature = "std")]
    #[test]
    fn a_reservation_the_system_refuses_is_an_error() {
        const FOUR_TB: usize = 4 << 40;
        if usize::BITS < 64 {
            return;
        }
        let always = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .map(|s| s.trim() == "1")
            .unwrap_or(true);
        match take::<u8>("huge", FOUR_TB) {
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("huge") && msg.contains(&FOUR_TB.to_string()),
                    "{msg}"
                );
            }
            Ok(_untouched) => assert!(always, "4 TB reserved without overcommit"),
        }
        // Overflowing sizes are errors too, not a capacity-overflow panic.
        assert!(take::<f64>("huge", usize::MAX / 2).is_err());
    }
}
