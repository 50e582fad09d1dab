// copy.cu: strided copies, dtype casts and fills: the data movement every other op builds on.
// Rust side: src/ops/copy.rs. CPU counterparts: Cpu::copy_into, Cpu::cast, Backend::full.
#include "common.cuh"

// dst[dst_layout(i)] = src[src_layout(i)] for the n elements of two views of the same shape.
template <class T>
__device__ void copy_strided(TsLayout sl, const T* __restrict__ src, TsLayout dl, T* __restrict__ dst,
                             long long n) {
    TS_GRID_STRIDE(i, n) { dst[ts_offset(dl, i)] = src[ts_offset(sl, i)]; }
}

// out[i] = convert(src[layout(i)]) into a contiguous output, through f64 as the CPU does.
template <class S, class D>
__device__ void cast_strided(TsLayout sl, const S* __restrict__ src, D* __restrict__ out, long long n) {
    TS_GRID_STRIDE(i, n) { out[i] = TsConv<D>::from_f64(TsConv<S>::to_f64(src[ts_offset(sl, i)])); }
}

// out[i] = value for a contiguous buffer.
template <class T>
__device__ void fill(T* __restrict__ out, long long n, double value) {
    T v = TsConv<T>::from_f64(value);
    TS_GRID_STRIDE(i, n) { out[i] = v; }
}

#define TS_COPY(T, S)                                                                              \
    extern "C" __global__ void ts_copy_##S(TsLayout sl, const T* src, TsLayout dl, T* dst, long long n) { \
        copy_strided<T>(sl, src, dl, dst, n);                                                      \
    }                                                                                              \
    TS_EXPORT(ts_copy_##S)                                                                         \
    extern "C" __global__ void ts_fill_##S(T* out, long long n, double value) { fill<T>(out, n, value); } \
    TS_EXPORT(ts_fill_##S)
TS_FOR_ALL(TS_COPY)

#define TS_CAST(S, SN, D, DN)                                                                      \
    extern "C" __global__ void ts_cast_##SN##_##DN(TsLayout sl, const S* src, D* out, long long n) { \
        cast_strided<S, D>(sl, src, out, n);                                                       \
    }                                                                                              \
    TS_EXPORT(ts_cast_##SN##_##DN)
#define TS_CAST_FROM(S, SN)                                                                        \
    TS_CAST(S, SN, ts_f16, f16) TS_CAST(S, SN, ts_bf16, bf16) TS_CAST(S, SN, float, f32)           \
    TS_CAST(S, SN, double, f64) TS_CAST(S, SN, long long, i64) TS_CAST(S, SN, unsigned char, u8)
TS_FOR_ALL(TS_CAST_FROM)
