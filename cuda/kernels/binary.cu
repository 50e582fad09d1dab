// binary.cu: elementwise functions of two inputs (BinaryOp), comparisons (CmpOp -> u8) and
// `where`. Rust side: src/ops/binary.rs. CPU counterpart: tensor/src/ops/binary/cpu.rs.
// Broadcasting needs nothing here: a broadcast view has stride 0 in its layout.
#include "common.cuh"

// The op codes of src/ops/binary.rs (BinaryOp / CmpOp variants in declaration order).
enum { B_ADD, B_SUB, B_MUL, B_DIV, B_MAXIMUM, B_MINIMUM, B_POW };
enum { C_EQ, C_NE, C_LT, C_LE, C_GT, C_GE };

template <class C>
__device__ __forceinline__ C binary_eval(int op, C a, C b) {
    switch (op) {
        case B_ADD: return a + b;
        case B_SUB: return a - b;
        case B_MUL: return a * b;
        case B_DIV: return a / b;
        // NaN if either is NaN, like torch.maximum / torch.minimum.
        case B_MAXIMUM: return (a != a || b != b) ? a + b : (a >= b ? a : b);
        case B_MINIMUM: return (a != a || b != b) ? a + b : (a <= b ? a : b);
        case B_POW: return pow(a, b);
    }
    return a;
}

// out[ol(i)] = op(a[al(i)], b[bl(i)]); in place passes `a`'s pointer and layout as the output.
template <class T>
__device__ void binary_strided(TsLayout al, const T* a, TsLayout bl, const T* b, TsLayout ol, T* out,
                               long long n, int op) {
    typedef typename TsNum<T>::C C;
    TS_GRID_STRIDE(i, n) {
        C x = TsNum<T>::load(a[ts_offset(al, i)]);
        C y = TsNum<T>::load(b[ts_offset(bl, i)]);
        out[ts_offset(ol, i)] = TsNum<T>::store(binary_eval<C>(op, x, y));
    }
}

// The value a comparison looks at: the compute type, but i64 stays exact.
template <class T> struct CmpValue {
    typedef typename TsNum<T>::C V;
    static __device__ __forceinline__ V get(T v) { return TsNum<T>::load(v); }
};
template <> struct CmpValue<long long> {
    typedef long long V;
    static __device__ __forceinline__ long long get(long long v) { return v; }
};

template <class T>
__device__ void compare_strided(TsLayout al, const T* a, TsLayout bl, const T* b, unsigned char* out,
                                long long n, int op) {
    TS_GRID_STRIDE(i, n) {
        typename CmpValue<T>::V x = CmpValue<T>::get(a[ts_offset(al, i)]);
        typename CmpValue<T>::V y = CmpValue<T>::get(b[ts_offset(bl, i)]);
        bool r = false;
        switch (op) {
            case C_EQ: r = x == y; break;
            case C_NE: r = x != y; break;
            case C_LT: r = x < y; break;
            case C_LE: r = x <= y; break;
            case C_GT: r = x > y; break;
            case C_GE: r = x >= y; break;
        }
        out[i] = r ? 1 : 0;
    }
}

template <class T>
__device__ void where_strided(TsLayout cl, const unsigned char* cond, TsLayout al, const T* a, TsLayout bl,
                              const T* b, T* out, long long n) {
    TS_GRID_STRIDE(i, n) {
        out[i] = cond[ts_offset(cl, i)] != 0 ? a[ts_offset(al, i)] : b[ts_offset(bl, i)];
    }
}

#define TS_BINARY(T, S)                                                                            \
    extern "C" __global__ void ts_binary_##S(TsLayout al, const T* a, TsLayout bl, const T* b, TsLayout ol, \
                                             T* out, long long n, int op) {                        \
        binary_strided<T>(al, a, bl, b, ol, out, n, op);                                           \
    }                                                                                              \
    TS_EXPORT(ts_binary_##S)
TS_FOR_FLOATS(TS_BINARY)

#define TS_COMPARE_WHERE(T, S)                                                                     \
    extern "C" __global__ void ts_compare_##S(TsLayout al, const T* a, TsLayout bl, const T* b,     \
                                              unsigned char* out, long long n, int op) {           \
        compare_strided<T>(al, a, bl, b, out, n, op);                                              \
    }                                                                                              \
    TS_EXPORT(ts_compare_##S)                                                                      \
    extern "C" __global__ void ts_where_##S(TsLayout cl, const unsigned char* cond, TsLayout al, const T* a, \
                                            TsLayout bl, const T* b, T* out, long long n) {        \
        where_strided<T>(cl, cond, al, a, bl, b, out, n);                                          \
    }                                                                                              \
    TS_EXPORT(ts_where_##S)
TS_FOR_ALL(TS_COMPARE_WHERE)
