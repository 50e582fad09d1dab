// common.cuh: what every Tessera kernel shares, on the GPU (nvcc) and under the CPU SIMT
// shim (sim/simt.h, force-included by build.rs with -DTS_SIM).
//
// - TsLayout: a strided view (shape, strides in elements, offset), the same struct as
//   `KernelLayout` in src/layout.rs (#[repr(C)]). The Rust side merges dims that are
//   contiguous with each other before launching, so rank <= TS_MAX_DIMS covers every view the
//   models make.
// - ts_offset: the storage position of the i-th element in row-major order.
// - ts_f16 / ts_bf16: half types stored as 16-bit patterns and computed in f32, converted with
//   round-to-nearest-even in plain integer code, so both compilers see the same arithmetic.
// - TsNum<T>: load/store between a storage type and its compute type (f32 for the halves).
#pragma once

#ifndef TS_SIM
// Under nvcc a kernel needs no registration; the shim's header defines the real one.
#define TS_EXPORT(name)
// The block's dynamic shared memory (sized at launch) as a `type*`. `extern __shared__` has no
// C++ meaning, so the shim (sim/simt.h) defines its own version of this macro.
#define TS_DYNAMIC_SHARED(type, name)                                  \
    extern __shared__ __align__(16) unsigned char ts_dyn_smem_[];      \
    type* name = reinterpret_cast<type*>(ts_dyn_smem_)
#endif

#define TS_MAX_DIMS 8

struct TsLayout {
    int rank;
    int _pad;
    long long offset;
    long long shape[TS_MAX_DIMS];
    long long strides[TS_MAX_DIMS];
};

// Storage position of the element whose row-major index among the view's elements is `i`.
__device__ __forceinline__ long long ts_offset(const TsLayout& l, long long i) {
    long long off = l.offset;
    // Not unrolled: the trip count is the rank, and eight unrolled 64-bit divisions per call
    // site multiplied ptxas time (minutes for reduce.cu) for no speed-up.
#ifdef __CUDACC__
#pragma unroll 1
#endif
    for (int d = l.rank - 1; d >= 0; --d) {
        long long n = l.shape[d];
        long long q = i / n;
        off += (i - q * n) * l.strides[d];
        i = q;
    }
    return off;
}

// Total number of elements of a view.
__device__ __forceinline__ long long ts_numel(const TsLayout& l) {
    long long n = 1;
    for (int d = 0; d < l.rank; ++d) n *= l.shape[d];
    return n;
}

// A grid-stride loop over [0, n): each thread handles i, i + stride, ...
#define TS_GRID_STRIDE(i, n)                                                     \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// ------------------------------------------------------------------ half types as bits

struct ts_f16 { unsigned short bits; };
struct ts_bf16 { unsigned short bits; };

__device__ __forceinline__ unsigned int ts_f32_bits(float f) {
    union { float f; unsigned int u; } v;
    v.f = f;
    return v.u;
}
__device__ __forceinline__ float ts_bits_f32(unsigned int u) {
    union { float f; unsigned int u; } v;
    v.u = u;
    return v.f;
}

__device__ __forceinline__ float ts_bf16_to_f32(unsigned short b) {
    return ts_bits_f32(((unsigned int)b) << 16);
}
__device__ __forceinline__ unsigned short ts_f32_to_bf16(float f) {
    unsigned int u = ts_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float ts_f16_to_f32(unsigned short h) {
    unsigned int sign = ((unsigned int)h & 0x8000u) << 16;
    unsigned int exp = (h >> 10) & 0x1fu;
    unsigned int man = h & 0x3ffu;
    unsigned int u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);  // inf / NaN
    } else if (exp != 0) {
        u = sign | ((exp + 112u) << 23) | (man << 13);  // normal: rebias 15 -> 127
    } else if (man == 0) {
        u = sign;  // zero
    } else {
        // subnormal: value = man * 2^-24; normalize
        int e = -1;
        do {
            man <<= 1;
            ++e;
        } while ((man & 0x400u) == 0);
        u = sign | ((unsigned int)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return ts_bits_f32(u);
}

__device__ __forceinline__ unsigned short ts_f32_to_f16(float f) {
    unsigned int u = ts_f32_bits(f);
    unsigned int sign = (u >> 16) & 0x8000u;
    unsigned int a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (unsigned short)(sign | 0x7e00u);  // NaN
    if (a >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u); // rounds to inf
    if (a >= 0x38800000u) {
        // normal half: drop 13 mantissa bits with round-to-nearest-even
        unsigned int r = a - 0x38000000u;  // rebias 127 -> 15 (exponent - 112)
        r += 0xfffu + ((r >> 13) & 1u);
        return (unsigned short)(sign | (r >> 13));
    }
    if (a < 0x33000000u) return (unsigned short)sign;  // below half the smallest subnormal
    // subnormal half: value / 2^-24, rounded to nearest even
    unsigned int e = a >> 23;
    unsigned int man = (a & 0x7fffffu) | 0x800000u;
    unsigned int shift = 126u - e;  // value = man * 2^(e - 150) = q * 2^-24  =>  q = man >> (126 - e)
    unsigned int q = man >> shift;
    unsigned int rem = man & ((1u << shift) - 1u);
    unsigned int half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) q += 1u;
    return (unsigned short)(sign | q);
}

// ------------------------------------------------------------------ load / store by dtype

template <class T> struct TsNum;
template <> struct TsNum<float> {
    typedef float C;
    static __device__ __forceinline__ float load(float v) { return v; }
    static __device__ __forceinline__ float store(float v) { return v; }
};
template <> struct TsNum<double> {
    typedef double C;
    static __device__ __forceinline__ double load(double v) { return v; }
    static __device__ __forceinline__ double store(double v) { return v; }
};
template <> struct TsNum<ts_f16> {
    typedef float C;
    static __device__ __forceinline__ float load(ts_f16 v) { return ts_f16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_f16 store(float v) {
        ts_f16 r;
        r.bits = ts_f32_to_f16(v);
        return r;
    }
};
template <> struct TsNum<ts_bf16> {
    typedef float C;
    static __device__ __forceinline__ float load(ts_bf16 v) { return ts_bf16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_bf16 store(float v) {
        ts_bf16 r;
        r.bits = ts_f32_to_bf16(v);
        return r;
    }
};
template <> struct TsNum<long long> {
    typedef double C;
    static __device__ __forceinline__ double load(long long v) { return (double)v; }
    static __device__ __forceinline__ long long store(double v) { return (long long)v; }
};
template <> struct TsNum<unsigned char> {
    typedef float C;
    static __device__ __forceinline__ float load(unsigned char v) { return (float)v; }
    static __device__ __forceinline__ unsigned char store(float v) { return (unsigned char)v; }
};

// Instantiate a macro once per float dtype: M(storage type, suffix).
#define TS_FOR_FLOATS(M) M(ts_f16, f16) M(ts_bf16, bf16) M(float, f32) M(double, f64)
// ... and once per dtype.
#define TS_FOR_ALL(M) TS_FOR_FLOATS(M) M(long long, i64) M(unsigned char, u8)

// Conversions through f64, as the CPU reference's `Element::to_f64` / `from_f64` do: halves
// round f64 -> f32 -> half, each to nearest even (as PyTorch does); floats to integers
// truncate toward zero and saturate, NaN becomes 0 (like Rust's `as`).
template <class T> struct TsConv;
template <> struct TsConv<float> {
    static __device__ __forceinline__ double to_f64(float v) { return (double)v; }
    static __device__ __forceinline__ float from_f64(double d) { return (float)d; }
};
template <> struct TsConv<double> {
    static __device__ __forceinline__ double to_f64(double v) { return v; }
    static __device__ __forceinline__ double from_f64(double d) { return d; }
};
template <> struct TsConv<ts_f16> {
    static __device__ __forceinline__ double to_f64(ts_f16 v) { return (double)ts_f16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_f16 from_f64(double d) {
        ts_f16 r;
        r.bits = ts_f32_to_f16((float)d);
        return r;
    }
};
template <> struct TsConv<ts_bf16> {
    static __device__ __forceinline__ double to_f64(ts_bf16 v) { return (double)ts_bf16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_bf16 from_f64(double d) {
        ts_bf16 r;
        r.bits = ts_f32_to_bf16((float)d);
        return r;
    }
};
template <> struct TsConv<long long> {
    static __device__ __forceinline__ double to_f64(long long v) { return (double)v; }
    static __device__ __forceinline__ long long from_f64(double d) {
        if (d != d) return 0;
        if (d >= 9223372036854775807.0) return 9223372036854775807LL;
        if (d <= -9223372036854775808.0) return (-9223372036854775807LL - 1);
        return (long long)d;
    }
};
template <> struct TsConv<unsigned char> {
    static __device__ __forceinline__ double to_f64(unsigned char v) { return (double)v; }
    static __device__ __forceinline__ unsigned char from_f64(double d) {
        if (d != d || d <= 0.0) return 0;
        if (d >= 255.0) return 255;
        return (unsigned char)d;
    }
};
