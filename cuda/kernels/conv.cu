// conv.cu: im2col and col2im for NCHW images (convolution runs as im2col + batched GEMM).
// Rust side: src/ops/conv.rs. CPU counterpart: tensor/src/ops/conv/cpu.rs.
//
// im2col writes one column entry per thread (consecutive threads write consecutive output
// columns, so stores coalesce). col2im is written as a gather: one thread per image pixel
// sums the column entries that read it, in the CPU's order (kernel row, kernel column), so it
// needs no atomics, is deterministic and matches the CPU bit for bit.
#include "common.cuh"

// The geometry of Conv2dParams (mirrored by `Geom` in src/ops/conv.rs, #[repr(C)]).
struct TsConvGeom {
    long long c, h, w;      // input channels and size
    long long kh, kw;       // kernel
    long long oh, ow;       // output size
    long long sh, sw;       // stride
    long long ph, pw;       // zero padding
    long long dh, dw;       // dilation
};

// out[b, (ci, ki, kj), (oy, ox)] = x[b, ci, oy*sh - ph + ki*dh, ox*sw - pw + kj*dw] or 0.
// `xl` is the input's rank-4 view; out is contiguous with `n` elements.
template <class T>
__device__ void im2col_k(TsLayout xl, const T* __restrict__ x, T* __restrict__ out, long long n, TsConvGeom g) {
    TS_GRID_STRIDE(t, n) {
        long long ox = t % g.ow, r = t / g.ow;
        long long oy = r % g.oh;
        r /= g.oh;
        long long kj = r % g.kw;
        r /= g.kw;
        long long ki = r % g.kh;
        r /= g.kh;
        long long ci = r % g.c, b = r / g.c;
        long long iy = oy * g.sh - g.ph + ki * g.dh;
        long long ix = ox * g.sw - g.pw + kj * g.dw;
        T v;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w) {
            v = x[xl.offset + b * xl.strides[0] + ci * xl.strides[1] + iy * xl.strides[2] + ix * xl.strides[3]];
        } else {
            v = TsNum<T>::store(0);
        }
        out[t] = v;
    }
}

// img[b, ci, iy, ix] = sum over (ki, kj) of cols[b, (ci, ki, kj), (oy, ox)] where
// oy*sh - ph + ki*dh == iy and ox*sw - pw + kj*dw == ix. `cl` is the columns' rank-3 view
// [n, c*kh*kw, oh*ow]; img is contiguous with `n` elements. Halves accumulate in f32.
template <class T>
__device__ void col2im_k(TsLayout cl, const T* __restrict__ cols, T* __restrict__ img, long long n, TsConvGeom g) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(t, n) {
        long long ix = t % g.w, r = t / g.w;
        long long iy = r % g.h;
        r /= g.h;
        long long ci = r % g.c, b = r / g.c;
        const T* base = cols + cl.offset + b * cl.strides[0];
        C acc = 0;
        for (long long ki = 0; ki < g.kh; ++ki) {
            long long ty = iy + g.ph - ki * g.dh;
            if (ty < 0) break;  // decreases with ki
            if (ty % g.sh != 0 || ty / g.sh >= g.oh) continue;
            long long oy = ty / g.sh;
            for (long long kj = 0; kj < g.kw; ++kj) {
                long long tx = ix + g.pw - kj * g.dw;
                if (tx < 0) break;
                if (tx % g.sw != 0 || tx / g.sw >= g.ow) continue;
                long long ox = tx / g.sw;
                long long row = (ci * g.kh + ki) * g.kw + kj;
                acc += TsNum<T>::load(base[row * cl.strides[1] + (oy * g.ow + ox) * cl.strides[2]]);
            }
        }
        img[t] = TsNum<T>::store(acc);
    }
}

#define TS_CONV(T, S)                                                                                  \
    extern "C" __global__ void ts_im2col_##S(TsLayout xl, const T* x, T* out, long long n, TsConvGeom g) { \
        im2col_k<T>(xl, x, out, n, g);                                                                 \
    }                                                                                                  \
    TS_EXPORT(ts_im2col_##S)                                                                           \
    extern "C" __global__ void ts_col2im_##S(TsLayout cl, const T* cols, T* img, long long n, TsConvGeom g) { \
        col2im_k<T>(cl, cols, img, n, g);                                                              \
    }                                                                                                  \
    TS_EXPORT(ts_col2im_##S)
TS_FOR_FLOATS(TS_CONV)
