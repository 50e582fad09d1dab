// softmax.cu: fused softmax / log-softmax along one axis and their backward passes.
// Rust side: src/ops/softmax.rs. CPU counterpart: tensor/src/ops/softmax/cpu.rs (forward,
// f32/f64) and the composite defaults of tensor/src/backend/composite.rs (everything else).
//
// Every view arrives as (kept layout, stride along the axis): row `o` of a view starts at
// ts_offset(kept, o) and its k-th element is `stride * k` further. Work shapes:
// - row: a group (one warp for rows up to 1024 elements, else the whole block) per row;
//   the forward pass reads the row twice: an online (max, sum of exp) pass, then the write;
// - col: one thread per row when the axis is not the contiguous direction but the rows are
//   (softmax over dim 0 of a row-major matrix), so that a warp's loads stay coalesced.
// Compute in f32 for f16/bf16/f32 and f64 for f64. A row whose max is not finite (all -inf,
// any +inf, any NaN) gives NaN everywhere, as the CPU's fused rows and the composite do.
#include "rows.cuh"

// Online softmax state: running max and sum of exp(x - max).
template <class C> struct SmState {
    C m, s;
};

template <class C> __device__ __forceinline__ C sm_ninf() { return -(C)INFINITY; }

template <class C> __device__ __forceinline__ SmState<C> sm_push(SmState<C> a, C x) {
    if (x != x || a.m != a.m) {
        a.m = x != x ? x : a.m;
        a.s = a.m;  // NaN
    } else if (x > a.m) {
        a.s = a.s * exp(a.m - x) + (C)1;  // exp(-inf) = 0 for the first element
        a.m = x;
    } else if (x != sm_ninf<C>()) {
        a.s += exp(x - a.m);
    }
    return a;
}

template <class C> __device__ __forceinline__ SmState<C> sm_combine(SmState<C> a, SmState<C> b) {
    if (a.m != a.m) return a;
    if (b.m != b.m) return b;
    if (a.m == sm_ninf<C>()) return b;
    if (b.m == sm_ninf<C>()) return a;
    SmState<C> r;
    r.m = a.m > b.m ? a.m : b.m;
    r.s = a.s * exp(a.m - r.m) + b.s * exp(b.m - r.m);
    return r;
}

// The online-softmax state as a value rows.cuh can reduce.
template <class C> __device__ __forceinline__ SmState<C> ts_shfl_xor(SmState<C> a, int off) {
    SmState<C> b;
    b.m = __shfl_xor_sync(0xffffffffu, a.m, off);
    b.s = __shfl_xor_sync(0xffffffffu, a.s, off);
    return b;
}
template <class C> __device__ __forceinline__ SmState<C> ts_join(SmState<C> a, SmState<C> b) { return sm_combine(a, b); }

template <class T, bool BLOCK>
__device__ void softmax_rows(TsLayout xk, long long xs, const T* x, TsLayout ok, long long os, T* out,
                             long long rows, long long n, int log_mode) {
    typedef typename TsNum<T>::C C;
    __shared__ SmState<C> smem[32];
    long long g, ng;
    int t, nt;
    ts_row_group<BLOCK>(g, ng, t, nt);
    for (long long row = g; row < rows; row += ng) {
        const T* xr = x + ts_offset(xk, row);
        T* orow = out + ts_offset(ok, row);
        SmState<C> st;
        st.m = sm_ninf<C>();
        st.s = (C)0;
        for (long long k = t; k < n; k += nt) st = sm_push(st, TsNum<T>::load(xr[k * xs]));
        st = ts_group_all<BLOCK>(st, smem);
        const bool finite = st.m == st.m && st.m != sm_ninf<C>() && st.m != -sm_ninf<C>();
        const C nan = (C)NAN, inv = (C)1 / st.s, lse = st.m + log(st.s);
        for (long long k = t; k < n; k += nt) {
            C v = TsNum<T>::load(xr[k * xs]);
            C r = !finite ? nan : (log_mode ? v - lse : exp(v - st.m) * inv);
            orow[k * os] = TsNum<T>::store(r);
        }
    }
}

// One thread per row (rows contiguous with each other, the axis strided).
template <class T>
__device__ void softmax_col(TsLayout xk, long long xs, const T* x, TsLayout ok, long long os, T* out,
                            long long rows, long long n, int log_mode) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(row, rows) {
        const T* xr = x + ts_offset(xk, row);
        T* orow = out + ts_offset(ok, row);
        SmState<C> st;
        st.m = sm_ninf<C>();
        st.s = (C)0;
        for (long long k = 0; k < n; ++k) st = sm_push(st, TsNum<T>::load(xr[k * xs]));
        const bool finite = st.m == st.m && st.m != sm_ninf<C>() && st.m != -sm_ninf<C>();
        const C nan = (C)NAN, inv = (C)1 / st.s, lse = st.m + log(st.s);
        for (long long k = 0; k < n; ++k) {
            C v = TsNum<T>::load(xr[k * xs]);
            orow[k * os] = TsNum<T>::store(!finite ? nan : (log_mode ? v - lse : exp(v - st.m) * inv));
        }
    }
}

// Backward from the output y: softmax: y * (g - sum(g * y)); log-softmax: g - exp(y) * sum(g).
template <class C> __device__ __forceinline__ C bwd_term(C y, C g, int log_mode) { return log_mode ? g : g * y; }
template <class C> __device__ __forceinline__ C bwd_out(C y, C g, C s, int log_mode) {
    return log_mode ? g - exp(y) * s : y * (g - s);
}

template <class T, bool BLOCK>
__device__ void softmax_bwd_rows(TsLayout yk, long long ys, const T* y, TsLayout gk, long long gs, const T* gr,
                                 TsLayout ok, long long os, T* out, long long rows, long long n, int log_mode) {
    typedef typename TsNum<T>::C C;
    __shared__ C smem[32];
    long long g, ng;
    int t, nt;
    ts_row_group<BLOCK>(g, ng, t, nt);
    for (long long row = g; row < rows; row += ng) {
        const T* yr = y + ts_offset(yk, row);
        const T* grow = gr + ts_offset(gk, row);
        T* orow = out + ts_offset(ok, row);
        C s = (C)0;
        for (long long k = t; k < n; k += nt)
            s += bwd_term(TsNum<T>::load(yr[k * ys]), TsNum<T>::load(grow[k * gs]), log_mode);
        s = ts_group_all<BLOCK>(s, smem);
        for (long long k = t; k < n; k += nt) {
            C r = bwd_out(TsNum<T>::load(yr[k * ys]), TsNum<T>::load(grow[k * gs]), s, log_mode);
            orow[k * os] = TsNum<T>::store(r);
        }
    }
}

template <class T>
__device__ void softmax_bwd_col(TsLayout yk, long long ys, const T* y, TsLayout gk, long long gs, const T* gr,
                                TsLayout ok, long long os, T* out, long long rows, long long n, int log_mode) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(row, rows) {
        const T* yr = y + ts_offset(yk, row);
        const T* grow = gr + ts_offset(gk, row);
        T* orow = out + ts_offset(ok, row);
        C s = (C)0;
        for (long long k = 0; k < n; ++k)
            s += bwd_term(TsNum<T>::load(yr[k * ys]), TsNum<T>::load(grow[k * gs]), log_mode);
        for (long long k = 0; k < n; ++k)
            orow[k * os] =
                TsNum<T>::store(bwd_out(TsNum<T>::load(yr[k * ys]), TsNum<T>::load(grow[k * gs]), s, log_mode));
    }
}

#define SM_FWD_ARGS(T)                                                                                    \
    TsLayout xk, long long xs, const T *x, TsLayout ok, long long os, T *out, long long rows, long long n, \
        int log_mode
#define SM_BWD_ARGS(T)                                                                                      \
    TsLayout yk, long long ys, const T *y, TsLayout gk, long long gs, const T *g, TsLayout ok, long long os, \
        T *out, long long rows, long long n, int log_mode

#define TS_SOFTMAX(T, S)                                                                                       \
    extern "C" __global__ void ts_softmax_warp_##S(SM_FWD_ARGS(T)) {                                               \
        softmax_rows<T, false>(xk, xs, x, ok, os, out, rows, n, log_mode);                                     \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_warp_##S)                                                                             \
    extern "C" __global__ void ts_softmax_block_##S(SM_FWD_ARGS(T)) {                                              \
        softmax_rows<T, true>(xk, xs, x, ok, os, out, rows, n, log_mode);                                      \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_block_##S)                                                                            \
    extern "C" __global__ void ts_softmax_col_##S(SM_FWD_ARGS(T)) {                                                \
        softmax_col<T>(xk, xs, x, ok, os, out, rows, n, log_mode);                                             \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_col_##S)                                                                              \
    extern "C" __global__ void ts_softmax_bwd_warp_##S(SM_BWD_ARGS(T)) {                                           \
        softmax_bwd_rows<T, false>(yk, ys, y, gk, gs, g, ok, os, out, rows, n, log_mode);                      \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_bwd_warp_##S)                                                                         \
    extern "C" __global__ void ts_softmax_bwd_block_##S(SM_BWD_ARGS(T)) {                                          \
        softmax_bwd_rows<T, true>(yk, ys, y, gk, gs, g, ok, os, out, rows, n, log_mode);                       \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_bwd_block_##S)                                                                        \
    extern "C" __global__ void ts_softmax_bwd_col_##S(SM_BWD_ARGS(T)) {                                            \
        softmax_bwd_col<T>(yk, ys, y, gk, gs, g, ok, os, out, rows, n, log_mode);                              \
    }                                                                                                          \
    TS_EXPORT(ts_softmax_bwd_col_##S)
TS_FOR_FLOATS(TS_SOFTMAX)
