// Self-test kernels: block reductions through shared memory, warp shuffles and votes.
#include "common.cuh"

// Block sum through static shared memory; one partial sum per block.
extern "C" __global__ void ts_test_reduce_shared(const float* __restrict__ in, float* out, long long n) {
    __shared__ float s[256];
    unsigned t = threadIdx.x;
    long long i = (long long)blockIdx.x * blockDim.x + t;
    s[t] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) s[t] += s[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
TS_EXPORT(ts_test_reduce_shared)

// The same with the barrier after the store missing: a thread may read a neighbour's slot
// before the neighbour has written it, so the result depends on the order threads run in.
extern "C" __global__ void ts_test_reduce_missing_sync(const float* __restrict__ in, float* out, long long n) {
    __shared__ float s[256];
    unsigned t = threadIdx.x;
    long long i = (long long)blockIdx.x * blockDim.x + t;
    s[t] = i < n ? in[i] : 0.0f;
    for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k) s[t] += s[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}
TS_EXPORT(ts_test_reduce_missing_sync)

// Block sum with warp shuffles: each warp reduces with __shfl_down_sync, warp 0 reduces the
// warps' partial sums. Also writes every lane's butterfly all-reduce and inclusive scan.
template <class T>
__device__ void warp_reduce(const T* in, T* out, T* allred, T* scan, long long n) {
    __shared__ double part[32];
    unsigned t = threadIdx.x, lane = t & 31, warp = t >> 5;
    long long i = (long long)blockIdx.x * blockDim.x + t;
    T v = i < n ? in[i] : T(0);
    T x = v;
    for (int d = 16; d > 0; d >>= 1) x += __shfl_xor_sync(0xffffffffu, x, d);
    T s = v;
    for (unsigned d = 1; d < 32; d <<= 1) {
        T y = __shfl_up_sync(0xffffffffu, s, d);
        if (lane >= d) s += y;
    }
    if (i < n) {
        allred[i] = x;
        scan[i] = s;
    }
    for (unsigned d = 16; d > 0; d >>= 1) v += __shfl_down_sync(0xffffffffu, v, d);
    if (lane == 0) part[warp] = (double)v;
    __syncthreads();
    if (warp == 0) {
        unsigned nw = (blockDim.x + 31) / 32;
        double p = lane < nw ? part[lane] : 0.0;
        for (unsigned d = 16; d > 0; d >>= 1) p += __shfl_down_sync(0xffffffffu, p, d);
        if (lane == 0) out[blockIdx.x] = (T)p;
    }
}
#define WARP_REDUCE(T, sfx)                                                                   \
    extern "C" __global__ void ts_test_warp_reduce_##sfx(const T* in, T* out, T* allred, T* scan, \
                                                         long long n) {                       \
        warp_reduce<T>(in, out, allred, scan, n);                                             \
    }                                                                                         \
    TS_EXPORT(ts_test_warp_reduce_##sfx)
WARP_REDUCE(int, i32)
WARP_REDUCE(unsigned, u32)
WARP_REDUCE(float, f32)
WARP_REDUCE(double, f64)
WARP_REDUCE(long long, i64)

// __shfl_sync with sub-warp widths: out[t] = value of lane (src) within t's segment of `width`;
// xor with a width: segments cannot read later segments.
extern "C" __global__ void ts_test_shfl_width(int* idx_out, int* xor_out, int* down_out, int width) {
    unsigned t = threadIdx.x;
    idx_out[t] = __shfl_sync(0xffffffffu, (int)t * 10, 3, width);
    xor_out[t] = __shfl_xor_sync(0xffffffffu, (int)t, 5, width);
    down_out[t] = __shfl_down_sync(0xffffffffu, (int)t, 3, width);
}
TS_EXPORT(ts_test_shfl_width)

// Votes, full warp and a half-warp subset; syncthreads_count/and/or.
extern "C" __global__ void ts_test_votes(unsigned* out) {
    unsigned t = threadIdx.x, lane = t & 31, w = t >> 5;
    unsigned* o = out + w * 16;
    unsigned b = __ballot_sync(0xffffffffu, lane % 3 == 0);
    int any17 = __any_sync(0xffffffffu, lane == 17);
    int anyno = __any_sync(0xffffffffu, lane > 40);
    int all = __all_sync(0xffffffffu, lane < 32);
    int allno = __all_sync(0xffffffffu, lane < 31);
    unsigned half = 0;
    if (lane < 16) half = __ballot_sync(0x0000ffffu, lane & 1);  // only the named lanes call
    __syncwarp(0xffffffffu);
    int cnt = __syncthreads_count(t % 4 == 0);
    int an = __syncthreads_and(t < 10000);
    int orr = __syncthreads_or(t == 5);
    if (lane == 0) {
        o[0] = b; o[1] = any17; o[2] = anyno; o[3] = all; o[4] = allno; o[5] = half;
        o[6] = cnt; o[7] = an; o[8] = orr; o[9] = __activemask();
    }
}
TS_EXPORT(ts_test_votes)

// Lanes that have exited are left out of a collective (as on sm_70+): not an error.
extern "C" __global__ void ts_test_exited_lanes(int* out) {
    unsigned lane = threadIdx.x & 31;
    if (lane >= 16) return;
    int v = __shfl_down_sync(0xffffffffu, (int)lane, 1);
    out[threadIdx.x] = v;
}
TS_EXPORT(ts_test_exited_lanes)
