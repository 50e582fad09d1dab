// simt_warp.h: warp collectives for simt.h. Warps are 32 consecutive linear thread ids. Each
// collective waits only for the lanes named in the mask (lanes that have exited are left out,
// as on sm_70+); the runtime checks that the mask names the calling lane and that the lanes
// agree on the collective and the mask.
#pragma once

namespace simt {
template <class T> inline unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "warp collectives move values of at most 8 bytes");
    unsigned long long u = 0;
    memcpy(&u, &v, sizeof(T));
    return u;
}
template <class T> inline T from_bits(unsigned long long u) {
    T v;
    memcpy(&v, &u, sizeof(T));
    return v;
}
}  // namespace simt

inline void __syncwarp(unsigned mask = 0xffffffffu) {
    ::simt::warp_collective(::simt::W_SYNC, mask, 0, 0, 32);
}
template <class T> inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
    return ::simt::from_bits<T>(
        ::simt::warp_collective(::simt::W_SHFL_IDX, mask, ::simt::to_bits(var), src_lane, width));
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return ::simt::from_bits<T>(::simt::warp_collective(::simt::W_SHFL_UP, mask,
                                                        ::simt::to_bits(var), (int)delta, width));
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
    return ::simt::from_bits<T>(::simt::warp_collective(::simt::W_SHFL_DOWN, mask,
                                                        ::simt::to_bits(var), (int)delta, width));
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
    return ::simt::from_bits<T>(
        ::simt::warp_collective(::simt::W_SHFL_XOR, mask, ::simt::to_bits(var), lane_mask, width));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)::simt::warp_collective(::simt::W_BALLOT, mask, pred != 0, 0, 32);
}
inline int __any_sync(unsigned mask, int pred) {
    return (int)::simt::warp_collective(::simt::W_ANY, mask, pred != 0, 0, 32);
}
inline int __all_sync(unsigned mask, int pred) {
    return (int)::simt::warp_collective(::simt::W_ALL, mask, pred != 0, 0, 32);
}
// The lanes of the caller's warp that have not exited (fibers do not diverge, so this is the
// closest meaning; kernels should compute masks rather than rely on it).
inline unsigned __activemask() { return ::simt::activemask(); }

// Bit intrinsics that go with votes.
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
