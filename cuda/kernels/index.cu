// index.cu: index_select, gather and scatter_add along one axis with I64 indices.
// Rust side: src/ops/index.rs. CPU counterpart: tensor/src/ops/index/cpu.rs.
//
// All three use the CPU's trick: the data view is re-described by a "base" layout with the
// output's (or the index's) shape and a zero stride on `axis`, so ts_offset(base, t) is the
// storage position of output position t with its axis coordinate set to 0; adding
// index * stride lands on the selected element. Every index is bounds-checked here: a bad
// one is skipped (nothing out of bounds is touched) and sets *err, which the Rust side reads
// back and turns into the CPU's Error::Index.
#include "common.cuh"

// Marks a bad index; an atomic so that concurrent writers are well defined (also under the shim).
__device__ __forceinline__ bool index_ok(long long v, long long dim, unsigned int* err) {
    if ((unsigned long long)v < (unsigned long long)dim) return true;
    atomicOr(err, 1u);
    return false;
}

// out[t] = x[base(t) + index[(t / inner) % nidx] * stride], out contiguous.
template <class T>
__device__ void index_select_k(TsLayout base, const T* __restrict__ x, long long stride, TsLayout il,
                               const long long* __restrict__ idx, T* __restrict__ out, long long n,
                               long long inner, long long nidx, long long dim, unsigned int* err) {
    TS_GRID_STRIDE(t, n) {
        long long v = idx[ts_offset(il, (t / inner) % nidx)];
        if (index_ok(v, dim, err)) out[t] = x[ts_offset(base, t) + v * stride];
    }
}

// out[t] = x[base(t) + index[il(t)] * stride]; base and il share the index's shape.
template <class T>
__device__ void gather_k(TsLayout base, const T* __restrict__ x, long long stride, TsLayout il,
                         const long long* __restrict__ idx, T* __restrict__ out, long long n, long long dim,
                         unsigned int* err) {
    TS_GRID_STRIDE(t, n) {
        long long v = idx[ts_offset(il, t)];
        if (index_ok(v, dim, err)) out[t] = x[ts_offset(base, t) + v * stride];
    }
}

// Atomic accumulation per destination type. Integers wrap, as the CPU's wrapping_add.
__device__ __forceinline__ void scatter_atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void scatter_atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void scatter_atomic_add(long long* p, long long v) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), (unsigned long long)v);
}
// A byte add as a CAS loop on its aligned 32-bit word (allocations are 512-byte granular,
// so the word never leaves the block).
__device__ __forceinline__ void scatter_atomic_add(unsigned char* p, unsigned char v) {
    unsigned long long addr = (unsigned long long)p;
    unsigned int* word = reinterpret_cast<unsigned int*>(addr & ~3ull);
    unsigned int shift = (unsigned int)(addr & 3ull) * 8u;
    unsigned int old = *word, assumed;
    do {
        assumed = old;
        unsigned int b = ((assumed >> shift) + v) & 0xffu;
        old = atomicCAS(word, assumed, (assumed & ~(0xffu << shift)) | (b << shift));
    } while (old != assumed);
}

// The value added: the source converted to the accumulator's type (f16/bf16 into f32).
template <class T, class A> struct ScatterValue {
    static __device__ __forceinline__ A get(T v) { return (A)TsNum<T>::load(v); }
};
template <> struct ScatterValue<long long, long long> {
    static __device__ __forceinline__ long long get(long long v) { return v; }
};
template <> struct ScatterValue<unsigned char, unsigned char> {
    static __device__ __forceinline__ unsigned char get(unsigned char v) { return v; }
};

// acc[base(t) + index[il(t)] * stride] += src[sl(t)]; base, il and sl share the index's shape.
// The order of the additions into one element is not fixed (atomics).
template <class T, class A>
__device__ void scatter_add_k(TsLayout base, A* acc, long long stride, TsLayout il,
                              const long long* __restrict__ idx, TsLayout sl, const T* __restrict__ src,
                              long long n, long long dim, unsigned int* err) {
    TS_GRID_STRIDE(t, n) {
        long long v = idx[ts_offset(il, t)];
        if (index_ok(v, dim, err))
            scatter_atomic_add(acc + ts_offset(base, t) + v * stride, ScatterValue<T, A>::get(src[ts_offset(sl, t)]));
    }
}

#define TS_INDEX(T, S)                                                                                  \
    extern "C" __global__ void ts_index_select_##S(TsLayout base, const T* x, long long stride, TsLayout il, \
                                                   const long long* idx, T* out, long long n, long long inner, \
                                                   long long nidx, long long dim, unsigned int* err) {  \
        index_select_k<T>(base, x, stride, il, idx, out, n, inner, nidx, dim, err);                     \
    }                                                                                                   \
    TS_EXPORT(ts_index_select_##S)                                                                      \
    extern "C" __global__ void ts_gather_##S(TsLayout base, const T* x, long long stride, TsLayout il,  \
                                             const long long* idx, T* out, long long n, long long dim,  \
                                             unsigned int* err) {                                       \
        gather_k<T>(base, x, stride, il, idx, out, n, dim, err);                                        \
    }                                                                                                   \
    TS_EXPORT(ts_gather_##S)
TS_FOR_ALL(TS_INDEX)

// scatter_add per source dtype S with accumulator A (f16/bf16 accumulate into an f32 copy).
#define TS_SCATTER(T, A, S)                                                                            \
    extern "C" __global__ void ts_scatter_add_##S(TsLayout base, A* acc, long long stride, TsLayout il, \
                                                  const long long* idx, TsLayout sl, const T* src,     \
                                                  long long n, long long dim, unsigned int* err) {     \
        scatter_add_k<T, A>(base, acc, stride, il, idx, sl, src, n, dim, err);                         \
    }                                                                                                  \
    TS_EXPORT(ts_scatter_add_##S)
TS_SCATTER(ts_f16, float, f16)
TS_SCATTER(ts_bf16, float, bf16)
TS_SCATTER(float, float, f32)
TS_SCATTER(double, double, f64)
TS_SCATTER(long long, long long, i64)
TS_SCATTER(unsigned char, unsigned char, u8)
