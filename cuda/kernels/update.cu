// update.cu: fused, in-place optimizer steps (AdamW, SGD with/without momentum, EMA), one
// launch per parameter. Rust side: src/ops/update.rs. Specification: the default compositions
// of tensor/src/backend/update.rs; CPU counterpart: tensor/src/ops/inplace/cpu.rs.
//
// Bit-exactness with the default composition on the same device: every op of the composition
// is evaluated here once, in the same order, in the compute type, and for f16/bf16 rounded to
// the storage type after each op (`rnd`), as each separate kernel of the composition stores
// its result. Plain `a * b + c` would be contracted into an FMA by nvcc, so products and sums
// go through `__fmul_rn` / `__fadd_rn` (never contracted). The one exception is the scalar
// affine op (`mul_scalar`, `Affine`): unary.cu writes it as `x * p0 + p1`, which nvcc *does*
// contract, so `ts_affine` uses an explicit FMA on the GPU and the two rounded ops under the
// shim, where the host compiler does not contract (and where the CPU reference's
// `x * mul + add` is evaluated). Division and sqrt are IEEE-rounded in both (no fast math).
#include "common.cuh"

// Single IEEE ops in the compute type C (float or double), never fused with a neighbour.
__device__ __forceinline__ float ts_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double ts_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float ts_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double ts_add(double a, double b) { return __dadd_rn(a, b); }
// a - b == a + (-b) exactly in IEEE arithmetic (signed zeros included).
template <class C>
__device__ __forceinline__ C ts_sub(C a, C b) { return ts_add(a, -b); }

// unary.cu's `Affine { mul, add }` as that kernel evaluates it on this compiler.
__device__ __forceinline__ float ts_affine(float x, float m, float a) {
#if defined(__CUDA_ARCH__)
    return __fmaf_rn(x, m, a);
#else
    return __fadd_rn(__fmul_rn(x, m), a);
#endif
}
__device__ __forceinline__ double ts_affine(double x, double m, double a) {
#if defined(__CUDA_ARCH__)
    return __fma_rn(x, m, a);
#else
    return __dadd_rn(__dmul_rn(x, m), a);
#endif
}

// The value after a store to T and a load back: identity for f32/f64, rounding for halves.
template <class T>
__device__ __forceinline__ typename TsNum<T>::C rnd(typename TsNum<T>::C v) {
    return TsNum<T>::load(TsNum<T>::store(v));
}

// Storage position of element i: the contiguous fast path skips the index division.
__device__ __forceinline__ long long upd_pos(const TsLayout& l, long long i, int flat) {
    return flat ? l.offset + i : ts_offset(l, i);
}

// AdamW (AdamWStep): p·(1−lr·wd); m lerp toward g; v ← β2·v + (1−β2)·g²;
// p ← p − step_size · m / (sqrt(v) / bc2 + eps). Scalars are computed on the host in f64
// exactly as the composition computes them and rounded to C here, as unary.cu does.
template <class T>
__device__ void adamw_body(TsLayout pl, T* p, TsLayout gl, const T* g, TsLayout ml, T* m,
                           TsLayout vl, T* v, long long n, int flat, double decay, double lerp_scale,
                           int lerp_small, double beta2, double one_minus_beta2, double bc2,
                           double eps, double step_size) {
    typedef typename TsNum<T>::C C;
    const C c_decay = (C)decay, c_lerp = (C)lerp_scale, c_b2 = (C)beta2,
            c_omb2 = (C)one_minus_beta2, c_bc2 = (C)bc2, c_eps = (C)eps, c_step = (C)step_size;
    const C zero = (C)0, one = (C)1;
    TS_GRID_STRIDE(i, n) {
        const long long po = upd_pos(pl, i, flat), go = upd_pos(gl, i, flat),
                        mo = upd_pos(ml, i, flat), vo = upd_pos(vl, i, flat);
        const C gi = TsNum<T>::load(g[go]);
        C pi = TsNum<T>::load(p[po]), mi = TsNum<T>::load(m[mo]), vi = TsNum<T>::load(v[vo]);
        pi = rnd<T>(ts_affine(pi, c_decay, zero));
        const C diff = rnd<T>(ts_sub(gi, mi));
        const C scaled = rnd<T>(ts_affine(diff, c_lerp, zero));
        mi = rnd<T>(lerp_small ? ts_add(mi, scaled) : ts_sub(gi, scaled));
        vi = rnd<T>(ts_affine(vi, c_b2, zero));
        const C g2 = rnd<T>(ts_mul(gi, gi));  // Square
        vi = rnd<T>(ts_add(vi, rnd<T>(ts_affine(g2, c_omb2, zero))));
        C denom = rnd<T>(sqrt(vi));
        denom = rnd<T>(denom / c_bc2);
        denom = rnd<T>(ts_affine(denom, one, c_eps));
        C upd = rnd<T>(mi / denom);
        upd = rnd<T>(ts_affine(upd, c_step, zero));
        p[po] = TsNum<T>::store(ts_sub(pi, upd));
        m[mo] = TsNum<T>::store(mi);
        v[vo] = TsNum<T>::store(vi);
    }
}

// SGD (SgdStep): d ← g (+ wd·p); buf ← d on the first step, else momentum·buf + (1−dampening)·d
// (the product skipped when dampening is 0, as the composition skips it); d ← d + momentum·buf
// (nesterov) or buf; p ← p − lr·d. `buf` is null when there is no momentum buffer.
template <class T>
__device__ void sgd_body(TsLayout pl, T* p, TsLayout gl, const T* g, TsLayout bl, T* buf,
                         long long n, int flat, int has_wd, double wd, int first_step,
                         double momentum, int has_damp, double one_minus_damp, int nesterov,
                         double lr) {
    typedef typename TsNum<T>::C C;
    const C c_wd = (C)wd, c_mom = (C)momentum, c_omd = (C)one_minus_damp, c_lr = (C)lr;
    const C zero = (C)0;
    TS_GRID_STRIDE(i, n) {
        const long long po = upd_pos(pl, i, flat), go = upd_pos(gl, i, flat);
        const C pi = TsNum<T>::load(p[po]);
        C d = TsNum<T>::load(g[go]);
        if (has_wd) d = rnd<T>(ts_add(d, rnd<T>(ts_affine(pi, c_wd, zero))));
        if (buf) {
            const long long bo = upd_pos(bl, i, flat);
            C b;
            if (first_step) {
                b = d;
            } else {
                b = rnd<T>(ts_affine(TsNum<T>::load(buf[bo]), c_mom, zero));
                const C dd = has_damp ? rnd<T>(ts_affine(d, c_omd, zero)) : d;
                b = rnd<T>(ts_add(b, dd));
            }
            buf[bo] = TsNum<T>::store(b);
            d = nesterov ? rnd<T>(ts_add(d, rnd<T>(ts_affine(b, c_mom, zero)))) : b;
        }
        p[po] = TsNum<T>::store(ts_sub(pi, rnd<T>(ts_affine(d, c_lr, zero))));
    }
}

// EMA: t ← momentum·t + (1 − momentum)·s, each product stored before the sum.
template <class T>
__device__ void ema_body(TsLayout tl, T* t, TsLayout sl, const T* s, long long n, int flat,
                         double keep, double take) {
    typedef typename TsNum<T>::C C;
    const C c_keep = (C)keep, c_take = (C)take, zero = (C)0;
    TS_GRID_STRIDE(i, n) {
        const long long to = upd_pos(tl, i, flat), so = upd_pos(sl, i, flat);
        const C a = rnd<T>(ts_affine(TsNum<T>::load(s[so]), c_take, zero));
        const C b = rnd<T>(ts_affine(TsNum<T>::load(t[to]), c_keep, zero));
        t[to] = TsNum<T>::store(ts_add(b, a));
    }
}

#define TS_UPDATE(T, S)                                                                            \
    extern "C" __global__ void ts_adamw_update_##S(                                                \
        TsLayout pl, T* p, TsLayout gl, const T* g, TsLayout ml, T* m, TsLayout vl, T* v,          \
        long long n, int flat, double decay, double lerp_scale, int lerp_small, double beta2,      \
        double one_minus_beta2, double bc2, double eps, double step_size) {                        \
        adamw_body<T>(pl, p, gl, g, ml, m, vl, v, n, flat, decay, lerp_scale, lerp_small, beta2,   \
                      one_minus_beta2, bc2, eps, step_size);                                       \
    }                                                                                              \
    TS_EXPORT(ts_adamw_update_##S)                                                                 \
    extern "C" __global__ void ts_sgd_update_##S(                                                  \
        TsLayout pl, T* p, TsLayout gl, const T* g, TsLayout bl, T* buf, long long n, int flat,    \
        int has_wd, double wd, int first_step, double momentum, int has_damp,                      \
        double one_minus_damp, int nesterov, double lr) {                                          \
        sgd_body<T>(pl, p, gl, g, bl, buf, n, flat, has_wd, wd, first_step, momentum, has_damp,    \
                    one_minus_damp, nesterov, lr);                                                 \
    }                                                                                              \
    TS_EXPORT(ts_sgd_update_##S)                                                                   \
    extern "C" __global__ void ts_ema_update_##S(TsLayout tl, T* t, TsLayout sl, const T* s,       \
                                                 long long n, int flat, double keep, double take) { \
        ema_body<T>(tl, t, sl, s, n, flat, keep, take);                                            \
    }                                                                                              \
    TS_EXPORT(ts_ema_update_##S)
TS_FOR_FLOATS(TS_UPDATE)

// ------------------------------------------------------------------ sum of squares (clipping)
// Σ x² over several contiguous tensors in one launch (a gradient norm for clipping). Pass 1:
// every block walks every span with the grid's stride and writes one partial sum (f32 for
// f16/bf16/f32, f64 for f64); pass 2: one block sums the partials. Fixed grid, fixed order:
// deterministic for a given grid size.

// One contiguous run of elements: a device pointer and a length (uploaded as an array).
struct TsSpan {
    unsigned long long ptr;
    long long len;
};

#define SUMSQ_THREADS 256

// The block's sum of `v`, valid in thread 0. blockDim.x == SUMSQ_THREADS.
template <class C>
__device__ __forceinline__ C sumsq_block_sum(C v) {
    __shared__ C warp_sums[SUMSQ_THREADS / 32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < SUMSQ_THREADS / 32 ? warp_sums[lane] : (C)0;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    }
    return v;
}

template <class T>
__device__ void sumsq_partial_body(const TsSpan* spans, int count, typename TsNum<T>::C* partial) {
    typedef typename TsNum<T>::C C;
    C acc = (C)0;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (int t = 0; t < count; ++t) {
        const T* x = reinterpret_cast<const T*>(spans[t].ptr);
        const long long len = spans[t].len;
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < len; i += stride) {
            const C v = TsNum<T>::load(x[i]);
            acc += v * v;
        }
    }
    acc = sumsq_block_sum<C>(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

template <class C>
__device__ void sumsq_final_body(const C* partial, int n, C* out) {
    C acc = (C)0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
    acc = sumsq_block_sum<C>(acc);
    if (threadIdx.x == 0) out[0] = acc;
}

#define TS_SUMSQ(T, S)                                                                             \
    extern "C" __global__ void ts_sumsq_partial_##S(const TsSpan* spans, int count,                \
                                                    TsNum<T>::C* partial) {                        \
        sumsq_partial_body<T>(spans, count, partial);                                              \
    }                                                                                              \
    TS_EXPORT(ts_sumsq_partial_##S)
TS_FOR_FLOATS(TS_SUMSQ)

#define TS_SUMSQ_FINAL(C, S)                                                                       \
    extern "C" __global__ void ts_sumsq_final_##S(const C* partial, int n, C* out) {               \
        sumsq_final_body<C>(partial, n, out);                                                      \
    }                                                                                              \
    TS_EXPORT(ts_sumsq_final_##S)
TS_SUMSQ_FINAL(float, f32)
TS_SUMSQ_FINAL(double, f64)
