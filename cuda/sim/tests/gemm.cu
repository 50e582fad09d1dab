// Self-test kernels: a 2-D tiled SGEMM in dynamic shared memory, a padded-tile transpose, a
// shared array of structs, and a barrier-free elementwise kernel (the fast path).
#include "common.cuh"

#define TILE 16

// C[M,N] = A[M,K] B[K,N], row-major; block (TILE, TILE); 2*TILE*TILE floats of dynamic shared.
extern "C" __global__ void ts_test_sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B,
                                               float* __restrict__ C, int M, int N, int K) {
    TS_DYNAMIC_SHARED(float, smem);
    float* As = smem;                // [TILE][TILE]
    float* Bs = smem + TILE * TILE;  // [TILE][TILE]
    int tx = threadIdx.x, ty = threadIdx.y;
    int row = blockIdx.y * TILE + ty, col = blockIdx.x * TILE + tx;
    float acc = 0.0f;
    for (int k0 = 0; k0 < K; k0 += TILE) {
        As[ty * TILE + tx] = (row < M && k0 + tx < K) ? A[(long long)row * K + k0 + tx] : 0.0f;
        Bs[ty * TILE + tx] = (k0 + ty < K && col < N) ? B[(long long)(k0 + ty) * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; ++k) acc = fmaf(As[ty * TILE + k], Bs[k * TILE + tx], acc);
        __syncthreads();
    }
    if (row < M && col < N) C[(long long)row * N + col] = acc;
}
TS_EXPORT(ts_test_sgemm_tiled)

// out = in^T for an R x C matrix, through a padded 32x33 static tile; block (32, 8).
extern "C" __global__ void ts_test_transpose(const float* in, float* out, int R, int C) {
    __shared__ float tile[32][33];
    int x = blockIdx.x * 32 + threadIdx.x, y0 = blockIdx.y * 32;
    for (int j = threadIdx.y; j < 32; j += 8)
        if (x < C && y0 + j < R) tile[j][threadIdx.x] = in[(long long)(y0 + j) * C + x];
    __syncthreads();
    int ox = y0 + threadIdx.x, oy0 = blockIdx.x * 32;
    for (int j = threadIdx.y; j < 32; j += 8)
        if (ox < R && oy0 + j < C) out[(long long)(oy0 + j) * R + ox] = tile[threadIdx.x][j];
}
TS_EXPORT(ts_test_transpose)

// Arg-max per block through a shared array of structs.
struct TsTestBest {
    float v;
    int i;
};
extern "C" __global__ void ts_test_argmax(const float* in, int* out, long long n) {
    __shared__ TsTestBest best[256];
    unsigned t = threadIdx.x;
    long long i = (long long)blockIdx.x * blockDim.x + t;
    best[t].v = i < n ? in[i] : -INFINITY;
    best[t].i = (int)i;
    __syncthreads();
    for (unsigned k = blockDim.x / 2; k > 0; k >>= 1) {
        if (t < k && (best[t + k].v > best[t].v || (best[t + k].v == best[t].v && best[t + k].i < best[t].i)))
            best[t] = best[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = best[0].i;
}
TS_EXPORT(ts_test_argmax)

// Elementwise, no barrier: every thread runs start to finish in one go.
extern "C" __global__ void ts_test_axpy(const float* x, float* y, double a, long long n) {
    float af = (float)a;
    TS_GRID_STRIDE(i, n) { y[i] = fmaf(af, x[i], y[i]); }
}
TS_EXPORT(ts_test_axpy)

// Strided view through TsLayout passed by value: out[i] = in[ts_offset(l, i)].
extern "C" __global__ void ts_test_gather_layout(const float* in, float* out, TsLayout l) {
    long long n = ts_numel(l);
    TS_GRID_STRIDE(i, n) { out[i] = in[ts_offset(l, i)]; }
}
TS_EXPORT(ts_test_gather_layout)

// Index builtins in a 3-D grid of 3-D blocks: every thread writes its global coordinates.
extern "C" __global__ void ts_test_indices(int* out) {
    unsigned bl = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned tl = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    __syncthreads();  // the values survive a switch
    int* o = out + 3 * (bl * nt + tl);
    o[0] = (int)(blockIdx.x * 100 + threadIdx.x);
    o[1] = (int)(blockIdx.y * 100 + threadIdx.y);
    o[2] = (int)(blockIdx.z * 100 + threadIdx.z);
}
TS_EXPORT(ts_test_indices)

// A kernel without parameters; and a spin lock within a block (a failed atomicCAS yields, so
// the lock holder gets to run).
__device__ int ts_test_noargs_flag;
extern "C" __global__ void ts_test_noargs() {
    __shared__ int lock;
    __shared__ int count;
    if (threadIdx.x == 0) { lock = 0; count = 0; }
    __syncthreads();
    while (atomicCAS(&lock, 0, 1) != 0) {}
    int c = count;  // the critical section; the holder yields inside it
    __nanosleep(100);
    count = c + 1;
    atomicExch(&lock, 0);
    __syncthreads();
    if (threadIdx.x == 0) ts_test_noargs_flag = count;
}
TS_EXPORT(ts_test_noargs)
extern "C" int ts_test_noargs_result() { return ts_test_noargs_flag; }
