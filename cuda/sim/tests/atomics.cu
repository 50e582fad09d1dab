// Self-test kernels: atomics from many concurrently running blocks.
#include "common.cuh"

struct TsTestCounters {
    int add_i;
    unsigned add_u;
    unsigned long long add_ull;
    float add_f;
    double add_d;
    int max_i, min_i;
    unsigned max_u, min_u;
    long long max_ll, min_ll;
    int cas_i;
    unsigned long long cas_ull;
    int exch_count;
    int exch_slot;
};

extern "C" __global__ void ts_test_atomics(TsTestCounters* c) {
    long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(&c->add_i, 1);
    atomicAdd(&c->add_u, 2u);
    atomicAdd(&c->add_ull, 3ull);
    atomicAdd(&c->add_f, 1.0f);
    atomicAdd(&c->add_d, 0.5);
    atomicMax(&c->max_i, (int)g);
    atomicMin(&c->min_i, -(int)g);
    atomicMax(&c->max_u, (unsigned)g * 3u);
    atomicMin(&c->min_u, (unsigned)g + 7u);
    atomicMax(&c->max_ll, g * 1000000000ll);
    atomicMin(&c->min_ll, -g * 1000000000ll);
    // increments by compare-and-swap loops
    int old = c->cas_i, assumed;
    do {
        assumed = old;
        old = atomicCAS(&c->cas_i, assumed, assumed + 1);
    } while (old != assumed);
    unsigned long long o2 = c->cas_ull, a2;
    do {
        a2 = o2;
        o2 = atomicCAS(&c->cas_ull, a2, a2 + 5ull);
    } while (o2 != a2);
    // every thread swaps its id in; counts swaps that saw a previous id (all but the first)
    if (atomicExch(&c->exch_slot, (int)g + 1) != 0) atomicAdd(&c->exch_count, 1);
    __threadfence();
}
TS_EXPORT(ts_test_atomics)

// A per-block histogram in shared memory, merged into global with atomics.
extern "C" __global__ void ts_test_histogram(const unsigned char* in, unsigned* hist, long long n) {
    __shared__ unsigned h[256];
    for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) h[b] = 0;
    __syncthreads();
    TS_GRID_STRIDE(i, n) { atomicAdd(&h[in[i]], 1u); }
    __syncthreads();
    for (unsigned b = threadIdx.x; b < 256; b += blockDim.x) atomicAdd(&hist[b], h[b]);
}
TS_EXPORT(ts_test_histogram)
