// norm.cu: fused layer norm (forward with saved mean/rstd, backward for x) and the batch
// norm apply step. Rust side: src/ops/norm.rs. CPU counterpart: tensor/src/ops/norm/cpu.rs
// (fused layer norm: two-pass mean/variance accumulated in f64, the output computed in the
// element type from the rounded mean and rstd) and the composite defaults in
// tensor/src/backend/composite.rs (backward, batch norm).
//
// Layer norm rows: a row's start is ts_offset(kept, row), its j-th normalized element is
// `red_pos(inner, j)` further (inner has offset 0); weight/bias/grad views likewise. A warp per
// row for rows up to 1024 elements, a block per row beyond. Statistics accumulate in f64 for
// f32/f64 (as the CPU) and in f32 for f16/bf16.
#include "rows.cuh"

template <class T> struct NormAcc { typedef double A; };
template <> struct NormAcc<ts_f16> { typedef float A; };
template <> struct NormAcc<ts_bf16> { typedef float A; };

__device__ __forceinline__ long long red_pos(const TsLayout& l, long long j) {
    return l.rank == 1 ? l.offset + j * l.strides[0] : ts_offset(l, j);
}

template <class A> struct NPair {
    A a, b;
};

// A pair of sums as a value rows.cuh can reduce.
template <class A> __device__ __forceinline__ NPair<A> ts_shfl_xor(NPair<A> p, int off) {
    p.a = __shfl_xor_sync(0xffffffffu, p.a, off);
    p.b = __shfl_xor_sync(0xffffffffu, p.b, off);
    return p;
}
template <class A> __device__ __forceinline__ NPair<A> ts_join(NPair<A> p, NPair<A> q) {
    p.a += q.a;
    p.b += q.b;
    return p;
}

// y = (x - mean) * rstd [* w] [+ b]; mean/rstd written per row (contiguous). w/b may be null.
template <class T, bool BLOCK>
__device__ void layer_norm_rows(TsLayout xk, TsLayout xi, const T* x, TsLayout wl, const T* w, TsLayout bl,
                                const T* b, T* y, T* mean, T* rstd, long long rows, long long d, double eps) {
    typedef typename TsNum<T>::C C;
    typedef typename NormAcc<T>::A A;
    __shared__ NPair<A> smem[32];
    long long g, ng;
    int t, nt;
    ts_row_group<BLOCK>(g, ng, t, nt);
    for (long long row = g; row < rows; row += ng) {
        const T* xr = x + ts_offset(xk, row);
        NPair<A> p;
        p.a = (A)0;
        p.b = (A)0;
        for (long long j = t; j < d; j += nt) p.a += (A)TsNum<T>::load(xr[red_pos(xi, j)]);
        const A mu = ts_group_all<BLOCK>(p, smem).a / (A)d;
        p.a = (A)0;
        for (long long j = t; j < d; j += nt) {
            A c = (A)TsNum<T>::load(xr[red_pos(xi, j)]) - mu;
            p.a += c * c;
        }
        const A var = ts_group_all<BLOCK>(p, smem).a / (A)d;
        // The output uses the statistics in the compute type: for f32/f64 that is the element
        // type, as in the CPU's fused rows; halves keep f32 statistics (rounding the mean to a
        // half would cost the output its precision on near-constant rows).
        const double rd = 1.0 / sqrt((double)var + eps);
        const T mt = TsConv<T>::from_f64((double)mu), rt = TsConv<T>::from_f64(rd);
        const C mc = (C)mu, rc = (C)rd;
        if (t == 0) {
            mean[row] = mt;
            rstd[row] = rt;
        }
        for (long long j = t; j < d; j += nt) {
            C o = (TsNum<T>::load(xr[red_pos(xi, j)]) - mc) * rc;
            if (w) o = o * TsNum<T>::load(w[red_pos(wl, j)]);
            if (b) o = o + TsNum<T>::load(b[red_pos(bl, j)]);
            y[row * d + j] = TsNum<T>::store(o);
        }
    }
}

// dx = rstd * (ĝ - mean(ĝ) - x̂ * mean(ĝ * x̂)), ĝ = grad * w, x̂ = (x - mean) * rstd.
template <class T, bool BLOCK>
__device__ void layer_norm_bwd_rows(TsLayout xk, TsLayout xi, const T* x, TsLayout gk, TsLayout gi, const T* gr,
                                    TsLayout mk, const T* mean, TsLayout rk, const T* rstd, TsLayout wl, const T* w,
                                    T* dx, long long rows, long long d) {
    typedef typename NormAcc<T>::A A;
    __shared__ NPair<A> smem[32];
    long long g, ng;
    int t, nt;
    ts_row_group<BLOCK>(g, ng, t, nt);
    for (long long row = g; row < rows; row += ng) {
        const T* xr = x + ts_offset(xk, row);
        const T* grow = gr + ts_offset(gk, row);
        const A mu = (A)TsNum<T>::load(mean[ts_offset(mk, row)]);
        const A rs = (A)TsNum<T>::load(rstd[ts_offset(rk, row)]);
        NPair<A> p;
        p.a = (A)0;
        p.b = (A)0;
        for (long long j = t; j < d; j += nt) {
            A gh = (A)TsNum<T>::load(grow[red_pos(gi, j)]);
            if (w) gh *= (A)TsNum<T>::load(w[red_pos(wl, j)]);
            const A xh = ((A)TsNum<T>::load(xr[red_pos(xi, j)]) - mu) * rs;
            p.a += gh;
            p.b += gh * xh;
        }
        p = ts_group_all<BLOCK>(p, smem);
        const A m1 = p.a / (A)d, m2 = p.b / (A)d;
        for (long long j = t; j < d; j += nt) {
            A gh = (A)TsNum<T>::load(grow[red_pos(gi, j)]);
            if (w) gh *= (A)TsNum<T>::load(w[red_pos(wl, j)]);
            const A xh = ((A)TsNum<T>::load(xr[red_pos(xi, j)]) - mu) * rs;
            dx[row * d + j] = TsConv<T>::from_f64((double)((gh - m1 - xh * m2) * rs));
        }
    }
}

// (x - mean[c]) * rstd[c] [* w[c]] [+ b[c]] over [n, c, inner]; per-channel vectors as
// (pointer, offset, stride); w/b may be null. Row-major index i gives c = (i / inner) % ch.
template <class T>
__device__ void batch_norm_apply(TsLayout xl, const T* x, TsLayout ol, T* out, long long n, long long ch,
                                 long long inner, const T* m, long long mo, long long ms, const T* r, long long ro,
                                 long long rs, const T* w, long long wo, long long ws, const T* b, long long bo,
                                 long long bs) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(i, n) {
        const long long c = (i / inner) % ch;
        C o = (TsNum<T>::load(x[ts_offset(xl, i)]) - TsNum<T>::load(m[mo + c * ms])) * TsNum<T>::load(r[ro + c * rs]);
        if (w) o = o * TsNum<T>::load(w[wo + c * ws]);
        if (b) o = o + TsNum<T>::load(b[bo + c * bs]);
        out[ts_offset(ol, i)] = TsNum<T>::store(o);
    }
}

#define LN_ARGS(T)                                                                                          \
    TsLayout xk, TsLayout xi, const T *x, TsLayout wl, const T *w, TsLayout bl, const T *b, T *y, T *mean, \
        T *rstd, long long rows, long long d, double eps
#define LN_BWD_ARGS(T)                                                                                      \
    TsLayout xk, TsLayout xi, const T *x, TsLayout gk, TsLayout gi, const T *g, TsLayout mk, const T *mean, \
        TsLayout rk, const T *rstd, TsLayout wl, const T *w, T *dx, long long rows, long long d

#define TS_NORM(T, S)                                                                                        \
    extern "C" __global__ void ts_layer_norm_warp_##S(LN_ARGS(T)) {                                          \
        layer_norm_rows<T, false>(xk, xi, x, wl, w, bl, b, y, mean, rstd, rows, d, eps);                     \
    }                                                                                                        \
    TS_EXPORT(ts_layer_norm_warp_##S)                                                                        \
    extern "C" __global__ void ts_layer_norm_block_##S(LN_ARGS(T)) {                                         \
        layer_norm_rows<T, true>(xk, xi, x, wl, w, bl, b, y, mean, rstd, rows, d, eps);                      \
    }                                                                                                        \
    TS_EXPORT(ts_layer_norm_block_##S)                                                                       \
    extern "C" __global__ void ts_layer_norm_bwd_warp_##S(LN_BWD_ARGS(T)) {                                  \
        layer_norm_bwd_rows<T, false>(xk, xi, x, gk, gi, g, mk, mean, rk, rstd, wl, w, dx, rows, d);         \
    }                                                                                                        \
    TS_EXPORT(ts_layer_norm_bwd_warp_##S)                                                                    \
    extern "C" __global__ void ts_layer_norm_bwd_block_##S(LN_BWD_ARGS(T)) {                                 \
        layer_norm_bwd_rows<T, true>(xk, xi, x, gk, gi, g, mk, mean, rk, rstd, wl, w, dx, rows, d);          \
    }                                                                                                        \
    TS_EXPORT(ts_layer_norm_bwd_block_##S)                                                                   \
    extern "C" __global__ void ts_batch_norm_apply_##S(                                                      \
        TsLayout xl, const T* x, TsLayout ol, T* out, long long n, long long ch, long long inner, const T* m, \
        long long mo, long long ms, const T* r, long long ro, long long rs, const T* w, long long wo,        \
        long long ws, const T* b, long long bo, long long bs) {                                              \
        batch_norm_apply<T>(xl, x, ol, out, n, ch, inner, m, mo, ms, r, ro, rs, w, wo, ws, b, bo, bs);       \
    }                                                                                                        \
    TS_EXPORT(ts_batch_norm_apply_##S)
TS_FOR_FLOATS(TS_NORM)
