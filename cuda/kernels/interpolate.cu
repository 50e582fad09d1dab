// interpolate.cu: bicubic resampling of NCHW images (PyTorch's upsample_bicubic2d, A = -0.75,
// clamped borders) and its adjoint. Rust side: src/ops/interpolate.rs.
// CPU counterpart: tensor/src/ops/interpolate/cpu.rs (PyTorch's expressions in its order).
//
// The taps of an output row or column (4 clamped input positions and their weights) are
// computed in the kernel, in the compute type (f64 for f64, f32 otherwise), as the CPU does.
// The backward pass is a gather: one thread per input pixel finds, by binary search on the
// monotone first tap, the output rows and columns that read it, and sums their weighted
// gradients in the CPU's order. No atomics, deterministic.
#include "common.cuh"

// Mirrored by `Geom` in src/ops/interpolate.rs (#[repr(C)]).
struct TsResizeGeom {
    long long c, h, w, oh, ow;
    double rh, rw;  // output-to-input coordinate ratios (ResizeParams::ratio)
    long long align_corners;
};

__device__ __forceinline__ float rs_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double rs_fma(double a, double b, double c) { return fma(a, b, c); }

// The first tap floor(src), PyTorch's way: src = r * (o + 0.5) - 0.5 as one FMA (or r * o
// when aligning corners), floored after rounding to f32, at most `last`. Also returns src.
template <class C>
__device__ __forceinline__ long long rs_first(long long o, C r, int align, long long last, C* src_out) {
    C oc = (C)o;
    C src = align ? r * oc : rs_fma(r, oc + (C)0.5, -(C)0.5);
    long long i0 = (long long)floorf((float)src);
    if (i0 > last) i0 = last;
    *src_out = src;
    return i0;
}

template <class C> __device__ __forceinline__ C rs_cubic1(C x) {
    return (((C)1.25 * x - (C)2.25) * x * x) + (C)1;  // ((A+2)x - (A+3))x^2 + 1
}
template <class C> __device__ __forceinline__ C rs_cubic2(C x) {
    return (((C)-0.75 * x - (C)-3.75) * x + (C)-6) * x - (C)-3;  // ((Ax - 5A)x + 8A)x - 4A
}

// The 4 input positions and weights of output position o along one axis. ROUND rounds the
// weights through the storage type T (the forward pass of f16/bf16, as PyTorch stores them).
template <class T, bool ROUND, class C>
__device__ __forceinline__ void rs_taps(long long o, C r, int align, long long len, long long* idx, C* wt) {
    long long last = len - 1;
    C src;
    long long i0 = rs_first<C>(o, r, align, last, &src);
    C lambda = src - (C)i0;
    lambda = lambda < (C)0 ? (C)0 : lambda;
    lambda = lambda > (C)1 ? (C)1 : lambda;
    C x2 = (C)1 - lambda;
    wt[0] = rs_cubic2<C>(lambda + (C)1);
    wt[1] = rs_cubic1<C>(lambda);
    wt[2] = rs_cubic1<C>(x2);
    wt[3] = rs_cubic2<C>(x2 + (C)1);
    for (int j = 0; j < 4; ++j) {
        long long i = i0 + j - 1;
        idx[j] = i < 0 ? 0 : (i > last ? last : i);
        if (ROUND) wt[j] = TsNum<T>::load(TsNum<T>::store(wt[j]));
    }
}

// The storage position of (plane p = b*c + ci, y, x) in a rank-4 view.
__device__ __forceinline__ long long rs_at(const TsLayout& l, long long c, long long p, long long y, long long x) {
    return l.offset + (p / c) * l.strides[0] + (p % c) * l.strides[1] + y * l.strides[2] + x * l.strides[3];
}

// Forward, the CPU's order: per output pixel, the 4-tap sum along each of the 4 rows, then
// the weighted sum of the rows. out is contiguous [n, c, oh, ow].
template <class T, bool ROUND>
__device__ void bicubic_k(TsLayout xl, const T* __restrict__ x, T* __restrict__ out, long long n, TsResizeGeom g) {
    typedef typename TsNum<T>::C C;
    const C rh = (C)g.rh, rw = (C)g.rw;
    const int align = (int)g.align_corners;
    TS_GRID_STRIDE(t, n) {
        long long ox = t % g.ow, r = t / g.ow;
        long long oy = r % g.oh, p = r / g.oh;
        long long iy[4], ix[4];
        C wy[4], wx[4];
        rs_taps<T, ROUND, C>(oy, rh, align, g.h, iy, wy);
        rs_taps<T, ROUND, C>(ox, rw, align, g.w, ix, wx);
        C acc = 0;
        for (int j = 0; j < 4; ++j) {
            const T* row = x + rs_at(xl, g.c, p, iy[j], 0);
            C s = TsNum<T>::load(row[ix[0] * xl.strides[3]]) * wx[0];
            for (int k = 1; k < 4; ++k) s = s + TsNum<T>::load(row[ix[k] * xl.strides[3]]) * wx[k];
            acc = j == 0 ? s * wy[0] : acc + s * wy[j];
        }
        out[t] = TsNum<T>::store(acc);
    }
}

// The output positions [lo, hi) along one axis whose taps include input position i: the
// first tap i0(o) is non-decreasing in o, and the clamped taps i0-1..i0+2 hold i iff
// i-2 <= i0 <= i+1, with no lower bound at the first and no upper bound at the last row.
template <class C>
__device__ __forceinline__ void rs_range(long long i, long long len, long long outn, C r, int align, long long* lo,
                                         long long* hi) {
    long long last = len - 1;
    C src;
    long long a = 0, b = outn;  // lo: first o with i0(o) >= i - 2
    if (i > 0) {
        while (a < b) {
            long long m = a + (b - a) / 2;
            if (rs_first<C>(m, r, align, last, &src) >= i - 2) b = m; else a = m + 1;
        }
    }
    *lo = a;
    *hi = outn;  // hi: first o with i0(o) > i + 1 (none bounds the last position)
    if (i < last) {
        b = outn;
        while (a < b) {
            long long m = a + (b - a) / 2;
            if (rs_first<C>(m, r, align, last, &src) > i + 1) b = m; else a = m + 1;
        }
        *hi = a;
    }
}

// Backward: in[p, iy, ix] = sum over outputs (oy, ox) and taps (ii, jj) with
// iy_tap[jj] == iy and ix_tap[ii] == ix of g * wy[jj] * wx[ii], in the CPU's order. gl is the
// gradient's rank-4 view [n, c, oh, ow]; out is contiguous [n, c, h, w]. Unrounded weights.
template <class T>
__device__ void bicubic_backward_k(TsLayout gl, const T* __restrict__ gr, T* __restrict__ out, long long n,
                                   TsResizeGeom g) {
    typedef typename TsNum<T>::C C;
    const C rh = (C)g.rh, rw = (C)g.rw;
    const int align = (int)g.align_corners;
    TS_GRID_STRIDE(t, n) {
        long long ix = t % g.w, r = t / g.w;
        long long iy = r % g.h, p = r / g.h;
        long long oy0, oy1, ox0, ox1;
        rs_range<C>(iy, g.h, g.oh, rh, align, &oy0, &oy1);
        rs_range<C>(ix, g.w, g.ow, rw, align, &ox0, &ox1);
        C acc = 0;
        for (long long oy = oy0; oy < oy1; ++oy) {
            long long ty[4];
            C wy[4];
            rs_taps<T, false, C>(oy, rh, align, g.h, ty, wy);
            for (long long ox = ox0; ox < ox1; ++ox) {
                long long tx[4];
                C wx[4];
                rs_taps<T, false, C>(ox, rw, align, g.w, tx, wx);
                C v = TsNum<T>::load(gr[rs_at(gl, g.c, p, oy, ox)]);
                for (int ii = 0; ii < 4; ++ii) {
                    if (tx[ii] != ix) continue;
                    for (int jj = 0; jj < 4; ++jj)
                        if (ty[jj] == iy) acc += v * wy[jj] * wx[ii];
                }
            }
        }
        out[t] = TsNum<T>::store(acc);
    }
}

#define TS_BICUBIC(T, S, ROUND)                                                                          \
    extern "C" __global__ void ts_bicubic_##S(TsLayout xl, const T* x, T* out, long long n, TsResizeGeom g) { \
        bicubic_k<T, ROUND>(xl, x, out, n, g);                                                           \
    }                                                                                                    \
    TS_EXPORT(ts_bicubic_##S)                                                                            \
    extern "C" __global__ void ts_bicubic_backward_##S(TsLayout gl, const T* gr, T* out, long long n,     \
                                                       TsResizeGeom g) {                                  \
        bicubic_backward_k<T>(gl, gr, out, n, g);                                                        \
    }                                                                                                    \
    TS_EXPORT(ts_bicubic_backward_##S)
TS_BICUBIC(ts_f16, f16, true)
TS_BICUBIC(ts_bf16, bf16, true)
TS_BICUBIC(float, f32, false)
TS_BICUBIC(double, f64, false)
