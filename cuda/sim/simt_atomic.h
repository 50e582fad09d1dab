// simt_atomic.h: atomics and device math for simt.h. Blocks run concurrently on worker
// threads, so atomics are real (__atomic builtins, sequentially consistent: on x86-64 a
// locked instruction costs the same either way). Only the overloads CUDA has are provided, so
// code that builds here builds under nvcc.
#pragma once

namespace simt {
template <class T> inline T atomic_fetch_add(T* p, T v) {
    return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
}
// Read-modify-write by compare-and-swap on the value's bits (floats, min/max).
template <class T, class F> inline T atomic_update(T* p, F f) {
    T old;
    __atomic_load(p, &old, __ATOMIC_RELAXED);
    T desired;
    do {
        desired = f(old);
    } while (!__atomic_compare_exchange(p, &old, &desired, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_RELAXED));
    return old;
}
void yield();  // lets the block's other fibers run (the caller stays ready)
template <class T> inline T atomic_cas(T* p, T compare, T val) {
    // A failed CAS may be a spin lock whose holder is another fiber of this block: yield so the
    // holder can run (fibers are not preempted).
    if (!__atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        yield();
    return compare;  // the old value either way
}
template <class T> inline T atomic_exch(T* p, T v) {
    T old;
    __atomic_exchange(p, &v, &old, __ATOMIC_SEQ_CST);
    return old;
}
}  // namespace simt

inline int atomicAdd(int* p, int v) { return ::simt::atomic_fetch_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return ::simt::atomic_fetch_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    return ::simt::atomic_fetch_add(p, v);
}
inline float atomicAdd(float* p, float v) {
    return ::simt::atomic_update(p, [v](float o) { return o + v; });
}
inline double atomicAdd(double* p, double v) {
    return ::simt::atomic_update(p, [v](double o) { return o + v; });
}
inline int atomicSub(int* p, int v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicSub(unsigned* p, unsigned v) {
    return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST);
}

#define SIMT_MINMAX(T)                                                                   \
    inline T atomicMax(T* p, T v) {                                                      \
        return ::simt::atomic_update(p, [v](T o) { return o < v ? v : o; });            \
    }                                                                                    \
    inline T atomicMin(T* p, T v) {                                                      \
        return ::simt::atomic_update(p, [v](T o) { return v < o ? v : o; });            \
    }
SIMT_MINMAX(int)
SIMT_MINMAX(unsigned)
SIMT_MINMAX(long long)
SIMT_MINMAX(unsigned long long)
#undef SIMT_MINMAX

#define SIMT_BITOPS(T)                                                                           \
    inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }         \
    inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }           \
    inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_SEQ_CST); }         \
    inline T atomicCAS(T* p, T c, T v) { return ::simt::atomic_cas(p, c, v); }                  \
    inline T atomicExch(T* p, T v) { return ::simt::atomic_exch(p, v); }
SIMT_BITOPS(int)
SIMT_BITOPS(unsigned)
SIMT_BITOPS(unsigned long long)
#undef SIMT_BITOPS
inline float atomicExch(float* p, float v) { return ::simt::atomic_exch(p, v); }
inline unsigned atomicInc(unsigned* p, unsigned lim) {
    return ::simt::atomic_update(p, [lim](unsigned o) { return o >= lim ? 0u : o + 1u; });
}
inline unsigned atomicDec(unsigned* p, unsigned lim) {
    return ::simt::atomic_update(p, [lim](unsigned o) { return (o == 0 || o > lim) ? lim : o - 1u; });
}

template <class T> inline T __ldg(const T* p) { return *p; }
inline void __nanosleep(unsigned) { ::simt::yield(); }

// ------------------------------------------------------------------ math
// The C library's expf/logf/... come from <math.h>. The fast intrinsics are the accurate
// functions here: the shim cannot reproduce nvcc's ulps, so tests compare with tolerances.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __exp10f(float x) { return powf(10.0f, x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
// Conversions: rn = nearest even (rint under the default rounding mode), rz = toward zero.
inline int __float2int_rn(float x) { return (int)rintf(x); }
inline int __float2int_rz(float x) { return (int)x; }
inline int __float2int_rd(float x) { return (int)floorf(x); }
inline int __float2int_ru(float x) { return (int)ceilf(x); }
inline long long __float2ll_rn(float x) { return (long long)rintf(x); }
inline int __double2int_rn(double x) { return (int)rint(x); }
inline long long __double2ll_rn(double x) { return (long long)rint(x); }
inline float __int2float_rn(int x) { return (float)x; }
inline float __int_as_float(int x) { return ::simt::from_bits<float>((unsigned)x); }
inline float __uint_as_float(unsigned x) { return ::simt::from_bits<float>(x); }
inline int __float_as_int(float x) { return (int)(unsigned)::simt::to_bits(x); }
inline unsigned __float_as_uint(float x) { return (unsigned)::simt::to_bits(x); }
inline long long __double_as_longlong(double x) { return (long long)::simt::to_bits(x); }
inline double __longlong_as_double(long long x) {
    return ::simt::from_bits<double>((unsigned long long)x);
}
using std::isfinite;
using std::isinf;
using std::isnan;
using std::signbit;

// CUDA's device min/max: fminf/fmaxf for floats, the usual comparison for integers (mixed
// types in the common type, as nvcc's overloads do).
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)b < (C)a ? (C)b : (C)a;
}
template <class A, class B,
          class = typename std::enable_if<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>::type>
inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)b : (C)a;
}
