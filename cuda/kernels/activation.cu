// activation.cu: fused GELU (exact erf form) and its backward over strided inputs, one pass
// instead of the composite's five (forward) or ten (backward) kernels and temporaries.
// Rust side: src/ops/activation.rs. CPU counterpart: `gelu` / `gelu_backward` in
// tensor/src/ops/unary/cpu.rs (f32/f64; the same formula, op for op); specification:
// composite::gelu / composite::gelu_backward (tensor/src/backend/composite.rs). f16/bf16 load
// to f32, compute there and round once on the store (the composite rounds after every op).
#include "common.cuh"

// Storage position of element i: the contiguous fast path skips the index division.
__device__ __forceinline__ long long act_pos(const TsLayout& l, long long i, int flat) {
    return flat ? l.offset + i : ts_offset(l, i);
}

// x · ½ · (1 + erf(x / √2)), evaluated as the CPU's fused kernel writes it.
template <class C>
__device__ __forceinline__ C gelu_eval(C v) {
    const C half = (C)0.5, one = (C)1, rsqrt2 = (C)0.70710678118654752440;
    return v * half * (one + erf(v * rsqrt2));
}

// grad · (Φ(x) + x·φ(x)) with Φ(x) = ½ erf(x/√2) + ½ and φ(x) = exp(−x²/2) / √(2π).
template <class C>
__device__ __forceinline__ C gelu_backward_eval(C v, C g, C inv_sqrt_2pi) {
    const C half = (C)0.5, rsqrt2 = (C)0.70710678118654752440;
    const C cdf = erf(v * rsqrt2) * half + half;
    const C pdf = exp(v * v * (C)-0.5) * inv_sqrt_2pi;
    return g * (cdf + v * pdf);
}

// out[i] = gelu(x[xl(i)]); `out` is contiguous.
template <class T>
__device__ void gelu_body(TsLayout xl, const T* x, T* out, long long n, int flat) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(i, n) {
        out[i] = TsNum<T>::store(gelu_eval<C>(TsNum<T>::load(x[act_pos(xl, i, flat)])));
    }
}

// out[i] = gelu'(x[xl(i)]) · grad[gl(i)]; `out` is contiguous.
template <class T>
__device__ void gelu_backward_body(TsLayout xl, const T* x, TsLayout gl, const T* g, T* out,
                                   long long n, int flat, double inv_sqrt_2pi) {
    typedef typename TsNum<T>::C C;
    const C k = (C)inv_sqrt_2pi;
    TS_GRID_STRIDE(i, n) {
        const C v = TsNum<T>::load(x[act_pos(xl, i, flat)]);
        const C gv = TsNum<T>::load(g[act_pos(gl, i, flat)]);
        out[i] = TsNum<T>::store(gelu_backward_eval<C>(v, gv, k));
    }
}

#define TS_ACTIVATION(T, S)                                                                        \
    extern "C" __global__ void ts_gelu_fwd_##S(TsLayout xl, const T* x, T* out, long long n,       \
                                               int flat) {                                         \
        gelu_body<T>(xl, x, out, n, flat);                                                         \
    }                                                                                              \
    TS_EXPORT(ts_gelu_fwd_##S)                                                                     \
    extern "C" __global__ void ts_gelu_backward_##S(TsLayout xl, const T* x, TsLayout gl,          \
                                                    const T* g, T* out, long long n, int flat,     \
                                                    double inv_sqrt_2pi) {                         \
        gelu_backward_body<T>(xl, x, gl, g, out, n, flat, inv_sqrt_2pi);                           \
    }                                                                                              \
    TS_EXPORT(ts_gelu_backward_##S)
TS_FOR_FLOATS(TS_ACTIVATION)
