// unary.cu: elementwise functions of one float input (UnaryOp), out of place and in place.
// Rust side: src/ops/unary.rs. CPU counterpart: tensor/src/ops/unary/cpu.rs (`eval`), whose
// arithmetic this follows op for op, in the compute type (f32 for f16/bf16, f64 for f64).
#include "common.cuh"

// The op codes of src/ops/unary.rs (UnaryOp variants in declaration order).
enum {
    U_NEG, U_ABS, U_SIGN, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_RECIP, U_SQUARE, U_TANH, U_ERF,
    U_SIGMOID, U_RELU, U_POWF, U_DIV_SCALAR, U_SCALAR_DIV, U_AFFINE, U_CLAMP
};

template <class C>
__device__ __forceinline__ C unary_eval(int op, C x, C p0, C p1) {
    const C zero = (C)0, one = (C)1;
    switch (op) {
        case U_NEG: return -x;
        case U_ABS: return fabs(x);
        case U_SIGN: return x > zero ? one : (x < zero ? -one : x * zero);
        case U_EXP: return exp(x);
        case U_LOG: return log(x);
        case U_SQRT: return sqrt(x);
        case U_RSQRT: return one / sqrt(x);
        case U_RECIP: return one / x;
        case U_SQUARE: return x * x;
        case U_TANH: return tanh(x);
        case U_ERF: return erf(x);
        case U_SIGMOID:
            if (x >= zero) return one / (one + exp(-x));
            else { C e = exp(x); return e / (one + e); }
        case U_RELU: return x > zero ? x : x * zero;
        case U_POWF: return pow(x, p0);
        case U_DIV_SCALAR: return x / p0;
        case U_SCALAR_DIV: return p0 / x;
        case U_AFFINE: return x * p0 + p1;
        case U_CLAMP: return x < p0 ? p0 : (x > p1 ? p1 : x);
    }
    return x;
}

// out[ol(i)] = op(x[xl(i)]); the in-place form passes the same pointer and layout twice.
template <class T>
__device__ void unary_strided(TsLayout xl, const T* x, TsLayout ol, T* out, long long n, int op,
                              double p0, double p1) {
    typedef typename TsNum<T>::C C;
    const C q0 = (C)p0, q1 = (C)p1;
    TS_GRID_STRIDE(i, n) {
        C v = TsNum<T>::load(x[ts_offset(xl, i)]);
        out[ts_offset(ol, i)] = TsNum<T>::store(unary_eval<C>(op, v, q0, q1));
    }
}

#define TS_UNARY(T, S)                                                                             \
    extern "C" __global__ void ts_unary_##S(TsLayout xl, const T* x, TsLayout ol, T* out, long long n, \
                                            int op, double p0, double p1) {                        \
        unary_strided<T>(xl, x, ol, out, n, op, p0, p1);                                           \
    }                                                                                              \
    TS_EXPORT(ts_unary_##S)
TS_FOR_FLOATS(TS_UNARY)
