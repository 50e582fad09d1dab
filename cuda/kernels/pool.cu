// pool.cu: max, average and adaptive average pooling of NCHW images, and the backward passes
// of the averages. Rust side: src/ops/pool.rs. CPU counterpart: tensor/src/ops/pool/cpu.rs
// (itself PyTorch's window bounds, summation orders and divisors).
//
// One thread per output pixel (grid-stride; consecutive threads take consecutive columns, so
// reads of neighbouring windows and the writes coalesce). The backward passes are gathers:
// one thread per input pixel sums, in the CPU's (oy, ox) order, the divided gradients of the
// windows that contain it. No atomics, deterministic, and equal to the CPU bit for bit.
// f16/bf16 compute in f32 and round once.
#include "common.cuh"

// Mirrored by `Geom` in src/ops/pool.rs (#[repr(C)]).
struct TsPoolGeom {
    long long c, h, w;     // channels, input size
    long long oh, ow;      // output size
    long long kh, kw, sh, sw, ph, pw, dh, dw;
    long long count_include_pad;
};

// The storage position of (plane p = b*c + ci, y, x) in a rank-4 view.
__device__ __forceinline__ long long pool_at(const TsLayout& l, long long c, long long p, long long y, long long x) {
    return l.offset + (p / c) * l.strides[0] + (p % c) * l.strides[1] + y * l.strides[2] + x * l.strides[3];
}

// Max pooling: the CPU's window (first tap inside the image, stepping by the dilation), -inf
// start, `>` keeps the first maximum, a NaN wins and sticks. idx is the flat h*w position.
template <class T>
__device__ void max_pool_k(TsLayout xl, const T* __restrict__ x, T* __restrict__ out, long long* __restrict__ idx,
                           long long n, TsPoolGeom g) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(t, n) {
        long long ox = t % g.ow, r = t / g.ow;
        long long oy = r % g.oh, p = r / g.oh;
        long long ys = oy * g.sh - g.ph, xs = ox * g.sw - g.pw;
        long long ye = ys + (g.kh - 1) * g.dh + 1, xe = xs + (g.kw - 1) * g.dw + 1;
        if (ye > g.h) ye = g.h;
        if (xe > g.w) xe = g.w;
        if (ys < 0) ys += ((-ys + g.dh - 1) / g.dh) * g.dh;
        if (xs < 0) xs += ((-xs + g.dw - 1) / g.dw) * g.dw;
        C best = (C)ts_bits_f32(0xff800000u);  // -inf
        long long at = ys * g.w + xs;
        for (long long iy = ys; iy < ye; iy += g.dh) {
            for (long long ix = xs; ix < xe; ix += g.dw) {
                C v = TsNum<T>::load(x[pool_at(xl, g.c, p, iy, ix)]);
                if (v > best || v != v) {
                    best = v;
                    at = iy * g.w + ix;
                }
            }
        }
        out[t] = TsNum<T>::store(best);
        idx[t] = at;
    }
}

// PyTorch's average window along one axis: rows [a, b) summed; `padded` counts the padding.
struct AvgWin {
    long long a, b, padded;
};
__device__ __forceinline__ AvgWin avg_win(long long o, long long k, long long s, long long pad, long long len) {
    long long start = o * s - pad;
    long long end = start + k < len + pad ? start + k : len + pad;
    AvgWin r;
    r.padded = end - start;
    r.a = start > 0 ? start : 0;
    long long b = end < len ? end : len;
    if (b < 0) b = 0;
    r.b = b > r.a ? b : r.a;
    return r;
}
__device__ __forceinline__ long long avg_div(const TsPoolGeom& g, AvgWin wy, AvgWin wx) {
    return g.count_include_pad ? wy.padded * wx.padded : (wy.b - wy.a) * (wx.b - wx.a);
}

// PyTorch's adaptive bin [floor(o*len/out), ceil((o+1)*len/out)).
__device__ __forceinline__ long long bin_start(long long o, long long out, long long len) { return o * len / out; }
__device__ __forceinline__ long long bin_end(long long o, long long out, long long len) {
    return ((o + 1) * len + out - 1) / out;
}

// Average pooling (adaptive != 0: adaptive bins, divided by the bin height then its width).
template <class T>
__device__ void avg_pool_k(TsLayout xl, const T* __restrict__ x, T* __restrict__ out, long long n, TsPoolGeom g,
                           int adaptive) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(t, n) {
        long long ox = t % g.ow, r = t / g.ow;
        long long oy = r % g.oh, p = r / g.oh;
        long long y0, y1, x0, x1, d0, d1;
        if (adaptive) {
            y0 = bin_start(oy, g.oh, g.h), y1 = bin_end(oy, g.oh, g.h);
            x0 = bin_start(ox, g.ow, g.w), x1 = bin_end(ox, g.ow, g.w);
            d0 = y1 - y0, d1 = x1 - x0;
        } else {
            AvgWin wy = avg_win(oy, g.kh, g.sh, g.ph, g.h), wx = avg_win(ox, g.kw, g.sw, g.pw, g.w);
            y0 = wy.a, y1 = wy.b, x0 = wx.a, x1 = wx.b;
            d0 = avg_div(g, wy, wx), d1 = 1;
        }
        C sum = 0;
        if (d0 != 0) {
            for (long long iy = y0; iy < y1; ++iy)
                for (long long ix = x0; ix < x1; ++ix) sum += TsNum<T>::load(x[pool_at(xl, g.c, p, iy, ix)]);
            sum = adaptive ? sum / (C)d0 / (C)d1 : sum / (C)d0;
        }
        out[t] = TsNum<T>::store(sum);
    }
}

// The first and one-past-last output index whose window/bin contains input index i.
__device__ __forceinline__ void avg_range(long long i, long long k, long long s, long long pad, long long outn,
                                          long long* lo, long long* hi) {
    // start(o) = o*s - pad <= i  and  start(o) + k > i
    long long num = i + pad - k + 1;
    *lo = num <= 0 ? 0 : (num + s - 1) / s;
    long long h = (i + pad) / s + 1;
    *hi = h < outn ? h : outn;
}

// The adjoint of avg_pool_k: gl is the gradient's rank-4 view [n, c, oh, ow]; out is the
// contiguous input gradient with `n` elements.
template <class T>
__device__ void avg_pool_backward_k(TsLayout gl, const T* __restrict__ gr, T* __restrict__ out, long long n,
                                    TsPoolGeom g, int adaptive) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(t, n) {
        long long ix = t % g.w, r = t / g.w;
        long long iy = r % g.h, p = r / g.h;
        long long oy0, oy1, ox0, ox1;
        if (adaptive) {
            oy0 = bin_start(iy, g.h, g.oh), oy1 = bin_end(iy, g.h, g.oh);
            ox0 = bin_start(ix, g.w, g.ow), ox1 = bin_end(ix, g.w, g.ow);
        } else {
            avg_range(iy, g.kh, g.sh, g.ph, g.oh, &oy0, &oy1);
            avg_range(ix, g.kw, g.sw, g.pw, g.ow, &ox0, &ox1);
        }
        C acc = 0;
        for (long long oy = oy0; oy < oy1; ++oy) {
            for (long long ox = ox0; ox < ox1; ++ox) {
                C v = TsNum<T>::load(gr[pool_at(gl, g.c, p, oy, ox)]);
                if (adaptive) {
                    C a = (C)(bin_end(oy, g.oh, g.h) - bin_start(oy, g.oh, g.h));
                    C b = (C)(bin_end(ox, g.ow, g.w) - bin_start(ox, g.ow, g.w));
                    acc += v / a / b;
                } else {
                    long long d = avg_div(g, avg_win(oy, g.kh, g.sh, g.ph, g.h), avg_win(ox, g.kw, g.sw, g.pw, g.w));
                    if (d != 0) acc += v / (C)d;
                }
            }
        }
        out[t] = TsNum<T>::store(acc);
    }
}

#define TS_POOL(T, S)                                                                                    \
    extern "C" __global__ void ts_max_pool2d_##S(TsLayout xl, const T* x, T* out, long long* idx, long long n, \
                                                 TsPoolGeom g) {                                          \
        max_pool_k<T>(xl, x, out, idx, n, g);                                                            \
    }                                                                                                    \
    TS_EXPORT(ts_max_pool2d_##S)                                                                         \
    extern "C" __global__ void ts_avg_pool2d_##S(TsLayout xl, const T* x, T* out, long long n, TsPoolGeom g, \
                                                 int adaptive) {                                          \
        avg_pool_k<T>(xl, x, out, n, g, adaptive);                                                        \
    }                                                                                                    \
    TS_EXPORT(ts_avg_pool2d_##S)                                                                         \
    extern "C" __global__ void ts_avg_pool2d_backward_##S(TsLayout gl, const T* gr, T* out, long long n, \
                                                          TsPoolGeom g, int adaptive) {                  \
        avg_pool_backward_k<T>(gl, gr, out, n, g, adaptive);                                              \
    }                                                                                                    \
    TS_EXPORT(ts_avg_pool2d_backward_##S)
TS_FOR_FLOATS(TS_POOL)
