// rows.cuh: the "one group per row" pattern that softmax.cu and norm.cu share. A row is
// reduced by a group: one warp (short rows) or one whole block (long rows), chosen at compile
// time by BLOCK. Every thread of the group gets the reduced value.
//
// A value type V reduced here provides two overloads found by argument-dependent lookup:
//   V ts_shfl_xor(V v, int lane_mask)   -- __shfl_xor_sync of each field (full warp mask)
//   V ts_join(V a, V b)                 -- the associative combine (a sum, an online-softmax merge)
#pragma once
#include "common.cuh"

__device__ __forceinline__ float ts_shfl_xor(float v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ double ts_shfl_xor(double v, int m) { return __shfl_xor_sync(0xffffffffu, v, m); }
__device__ __forceinline__ float ts_join(float a, float b) { return a + b; }
__device__ __forceinline__ double ts_join(double a, double b) { return a + b; }

// The group this thread belongs to (g of ng groups in the grid) and its rank t of nt within it.
template <bool BLOCK>
__device__ __forceinline__ void ts_row_group(long long& g, long long& ng, int& t, int& nt) {
    if (BLOCK) {
        g = blockIdx.x;
        ng = gridDim.x;
        t = threadIdx.x;
        nt = blockDim.x;
    } else {
        g = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
        ng = (long long)gridDim.x * (blockDim.x >> 5);
        t = threadIdx.x & 31;
        nt = 32;
    }
}

// All-reduce over the group: butterfly shuffles within the warp, then (BLOCK) the warps'
// results through `smem` (32 slots). Ends with a barrier because the caller reuses smem.
template <bool BLOCK, class V>
__device__ __forceinline__ V ts_group_all(V a, V* smem) {
    for (int off = 16; off > 0; off >>= 1) a = ts_join(a, ts_shfl_xor(a, off));
    if (!BLOCK) return a;
    const int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if ((threadIdx.x & 31) == 0) smem[w] = a;
    __syncthreads();
    a = smem[0];
    for (int i = 1; i < nw; ++i) a = ts_join(a, smem[i]);
    __syncthreads();
    return a;
}
