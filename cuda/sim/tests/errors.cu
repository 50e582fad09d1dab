// Self-test kernels with planted errors the shim must report (and not hang on).
#include "common.cuh"

// The mask leaves out lane 0, which calls anyway.
extern "C" __global__ void ts_test_bad_mask(int* out) {
    out[threadIdx.x] = __shfl_sync(0xfffffffeu, (int)threadIdx.x, 0);
}
TS_EXPORT(ts_test_bad_mask)

// Lane 0 names lanes 0-1, the others the whole warp: the two groups wait on each other.
extern "C" __global__ void ts_test_mask_disagree(int* out) {
    unsigned lane = threadIdx.x & 31;
    out[threadIdx.x] = __shfl_sync(lane == 0 ? 0x3u : 0xffffffffu, (int)lane, 0);
}
TS_EXPORT(ts_test_mask_disagree)

// Half the warp votes, the other half shuffles, both with the full mask.
extern "C" __global__ void ts_test_op_disagree(int* out) {
    unsigned lane = threadIdx.x & 31;
    if (lane < 16)
        out[lane] = (int)__ballot_sync(0xffffffffu, 1);
    else
        out[lane] = __shfl_sync(0xffffffffu, 1, 0);
}
TS_EXPORT(ts_test_op_disagree)

// Threads 0-15 leave before the barrier the others wait at.
extern "C" __global__ void ts_test_divergent_exit(int* out) {
    if (threadIdx.x < 16) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}
TS_EXPORT(ts_test_divergent_exit)

// Thread 0 waits at a warp collective naming lane 1, which waits at __syncthreads.
extern "C" __global__ void ts_test_divergent_warp(int* out) {
    if (threadIdx.x == 0)
        out[0] = __shfl_sync(0x3u, 7, 1);
    else
        __syncthreads();
}
TS_EXPORT(ts_test_divergent_warp)

// Any kernel will do for launch-configuration checks.
extern "C" __global__ void ts_test_noop(int* out) {
    if (out && threadIdx.x == 0 && blockIdx.x == 0) out[0] = 1;
}
TS_EXPORT(ts_test_noop)

// Out of bounds for the ASan build: thread 31 writes one past a static shared array.
extern "C" __global__ void ts_test_oob_shared(float* out) {
    __shared__ float tile[32];
    tile[threadIdx.x + 1] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = tile[threadIdx.x];
}
TS_EXPORT(ts_test_oob_shared)

// The same in a template's static shared array (instantiated code).
template <class T> __device__ void oob_tmpl(T* out) {
    __shared__ T tile[32];
    tile[threadIdx.x + 1] = T(1);
    __syncthreads();
    out[threadIdx.x] = tile[threadIdx.x];
}
extern "C" __global__ void ts_test_oob_shared_tmpl(float* out) { oob_tmpl<float>(out); }
TS_EXPORT(ts_test_oob_shared_tmpl)

// One element past the launch's dynamic shared bytes.
extern "C" __global__ void ts_test_oob_dynamic(float* out) {
    TS_DYNAMIC_SHARED(float, s);
    s[threadIdx.x + 1] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}
TS_EXPORT(ts_test_oob_dynamic)

// One element past a global buffer.
extern "C" __global__ void ts_test_oob_global(float* out, long long n) {
    out[threadIdx.x + (n - (long long)blockDim.x) + 1] = 1.0f;
}
TS_EXPORT(ts_test_oob_global)

// A local array overrun on the fiber's stack.
extern "C" __global__ void ts_test_oob_stack(float* out, int k) {
    float a[8];
    for (int j = 0; j < 8; ++j) a[j] = (float)j;
    out[threadIdx.x] = a[k + (int)threadIdx.x % 2];
}
TS_EXPORT(ts_test_oob_stack)
