//! A stream-ordered caching allocator (PyTorch: `CUDACachingAllocator`, much simplified).
//!
//! `cudaMalloc`/`cudaFree` synchronize the device and cost tens of microseconds, and a
//! training step frees and re-asks for the same few hundred sizes every step. So a freed block
//! goes to a free list instead of back to the driver, and the next request of a similar size
//! takes it. Because every kernel is ordered on the device's one stream, a block freed by the
//! host can be handed out at once: any kernel that still reads it was queued before the kernel
//! that will overwrite it.
//!
//! Sizes round up to 512 bytes (small) or 2 MiB (large, ≥ 1 MiB), and a request takes the
//! smallest cached block of at most twice its rounded size. When the driver is out of memory,
//! every cached block is freed and the allocation retried once.

use crate::driver::{DevicePtr, Driver};
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_tensor::{Error, Result};

const SMALL_ROUND: usize = 512;
const LARGE: usize = 1 << 20;
const LARGE_ROUND: usize = 2 << 20;

/// Counters of what the allocator did (PyTorch: `torch.cuda.memory_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Allocations served from the driver.
    pub fresh: u64,
    /// Allocations served from the cache.
    pub reused: u64,
    /// Bytes in live blocks.
    pub in_use_bytes: usize,
    /// Bytes of cached free blocks.
    pub cached_bytes: usize,
    /// The most bytes in live blocks at once since the last reset.
    pub peak_in_use_bytes: usize,
}

/// The free lists of one device.
pub struct CachingAllocator {
    driver: Arc<dyn Driver>,
    free: BTreeMap<usize, Vec<DevicePtr>>,
    stats: AllocStats,
}

/// The size a request of `bytes` occupies.
pub fn rounded(bytes: usize) -> Option<usize> {
    let b = bytes.max(1);
    let r = if b < LARGE { SMALL_ROUND } else { LARGE_ROUND };
    b.checked_add(r - 1).map(|v| v / r * r)
}

impl CachingAllocator {
    /// An empty cache over `driver`.
    pub fn new(driver: Arc<dyn Driver>) -> Self {
        CachingAllocator {
            driver,
            free: BTreeMap::new(),
            stats: AllocStats::default(),
        }
    }

    /// A block of at least `bytes`; returns its pointer and its size (pass both to `free`).
    pub fn alloc(&mut self, bytes: usize) -> Result<(DevicePtr, usize)> {
        let size = rounded(bytes).ok_or_else(|| Error::Device {
            msg: format!("an allocation of {bytes} bytes is too large"),
        })?;
        let hit = self
            .free
            .range_mut(size..=size.saturating_mul(2))
            .find(|(_, v)| !v.is_empty())
            .map(|(&s, v)| (s, v.pop().expect("non-empty")));
        let (ptr, block) = match hit {
            Some((s, p)) => {
                if self.free.get(&s).is_some_and(|v| v.is_empty()) {
                    self.free.remove(&s);
                }
                self.stats.reused += 1;
                self.stats.cached_bytes -= s;
                (p, s)
            }
            None => {
                let p = match self.driver.alloc(size) {
                    Ok(p) => p,
                    Err(_) if self.stats.cached_bytes > 0 => {
                        self.empty_cache();
                        self.driver.alloc(size).map_err(|e| self.oom(bytes, e))?
                    }
                    Err(e) => return Err(self.oom(bytes, e)),
                };
                self.stats.fresh += 1;
                (p, size)
            }
        };
        self.stats.in_use_bytes += block;
        self.stats.peak_in_use_bytes = self.stats.peak_in_use_bytes.max(self.stats.in_use_bytes);
        Ok((ptr, block))
    }

    fn oom(&self, bytes: usize, cause: Error) -> Error {
        let info = match self.driver.mem_info() {
            Ok((free, total)) => format!("{free} of {total} bytes free"),
            Err(_) => String::from("free memory unknown"),
        };
        Error::Device {
            msg: format!(
                "out of device memory: asked for {bytes} bytes, {info}, {} bytes held by live tensors ({cause})",
                self.stats.in_use_bytes
            ),
        }
    }

    /// Returns a block to the cache.
    pub fn free(&mut self, ptr: DevicePtr, block: usize) {
        self.stats.in_use_bytes -= block;
        self.stats.cached_bytes += block;
        self.free.entry(block).or_default().push(ptr);
    }

    /// Frees every cached block to the driver (PyTorch: `torch.cuda.empty_cache`).
    pub fn empty_cache(&mut self) {
        // Queued kernels may still read blocks that were freed on the host: wait first.
        let _ = self.driver.synchronize();
        for (_, ptrs) in std::mem::take(&mut self.free) {
            for p in ptrs {
                // SAFETY: cached blocks came from this driver and nothing uses them.
                unsafe { self.driver.free(p) };
            }
        }
        self.stats.cached_bytes = 0;
    }

    /// The counters so far.
    pub fn stats(&self) -> AllocStats {
        self.stats
    }

    /// Restarts the fresh/reused counters and the peak.
    pub fn reset_stats(&mut self) {
        self.stats.fresh = 0;
        self.stats.reused = 0;
        self.stats.peak_in_use_bytes = self.stats.in_use_bytes;
    }
}

impl Drop for CachingAllocator {
    fn drop(&mut self) {
        self.empty_cache();
    }
}
