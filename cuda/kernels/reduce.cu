// reduce.cu: Sum / Max / Min / ArgMax / ArgMin over any set of axes of a strided view.
// Rust side: src/ops/reduce.rs. CPU counterpart: tensor/src/ops/reduce/cpu.rs.
//
// The Rust side splits the view into a "kept" layout (one entry per output row, carrying the
// view's offset) and a "reduced" layout (offset 0, one entry per reduced element, row-major
// over the reduced axes, so an element's position j is also the arg* index). Three shapes of
// work:
// - block: one block per (row, split) for long rows, strided loop + warp shuffles + a
//   shared-memory tree; several splits of one row write partials that `finish` combines.
// - warp: one warp per row for short rows.
// - col: 32 consecutive rows per block (threadIdx.x) when the rows, not the reduced elements,
//   are contiguous in memory (e.g. a sum over axis 0 of a row-major matrix): the loads of a
//   warp stay coalesced and threadIdx.y splits the reduced elements.
// Semantics follow the CPU: sums of f32/f64/i64/u8 accumulate in f64 (the CPU sums every
// dtype in f64), f16/bf16 in f32; max/min propagate NaN; arg* returns the first NaN, else
// the first extreme (ties go to the lower index, also for max/min of +0/-0).
#include "common.cuh"

enum { R_SUM, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN };

// Comparison key of a storage type: exact for every dtype (halves widen to f32).
template <class T> struct RedKey {
    typedef T K;
    static __device__ __forceinline__ K load(T v) { return v; }
    static __device__ __forceinline__ T store(K k) { return k; }
};
template <> struct RedKey<ts_f16> {
    typedef float K;
    static __device__ __forceinline__ float load(ts_f16 v) { return ts_f16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_f16 store(float k) { return TsNum<ts_f16>::store(k); }
};
template <> struct RedKey<ts_bf16> {
    typedef float K;
    static __device__ __forceinline__ float load(ts_bf16 v) { return ts_bf16_to_f32(v.bits); }
    static __device__ __forceinline__ ts_bf16 store(float k) { return TsNum<ts_bf16>::store(k); }
};
template <> struct RedKey<unsigned char> {  // widened so that warp shuffles take it
    typedef int K;
    static __device__ __forceinline__ int load(unsigned char v) { return (int)v; }
    static __device__ __forceinline__ unsigned char store(int k) { return (unsigned char)k; }
};

template <class T> struct SumAcc { typedef double A; };
template <> struct SumAcc<ts_f16> { typedef float A; };
template <> struct SumAcc<ts_bf16> { typedef float A; };

template <class T> struct OpSum {
    typedef typename SumAcc<T>::A Acc;
    typedef T Out;
    static __device__ __forceinline__ Acc identity() { return (Acc)0; }
    static __device__ __forceinline__ Acc make(T v, long long) { return (Acc)TsNum<T>::load(v); }
    static __device__ __forceinline__ Acc combine(Acc a, Acc b) { return a + b; }
    static __device__ __forceinline__ Acc shfl_down(unsigned mask, Acc a, int off) {
        return __shfl_down_sync(mask, a, off);
    }
    static __device__ __forceinline__ Out result(Acc a) { return TsConv<T>::from_f64((double)a); }
};

// A candidate of max/min/arg*: its value and its index j (-1: none yet).
template <class K> struct RedPick {
    K v;
    long long i;
};

// Compile-time choices without <type_traits> (the shim and nvcc see the same code).
template <bool B, class A, class C> struct RedIf { typedef A type; };
template <class A, class C> struct RedIf<false, A, C> { typedef C type; };
template <bool B> struct RedTag {};

template <class T, bool MAX, bool ARG> struct OpCmp {
    typedef typename RedKey<T>::K K;
    typedef RedPick<K> Acc;
    typedef typename RedIf<ARG, long long, T>::type Out;
    static __device__ __forceinline__ Acc identity() {
        Acc a;
        a.v = (K)0;
        a.i = -1;
        return a;
    }
    static __device__ __forceinline__ Acc make(T v, long long j) {
        Acc a;
        a.v = RedKey<T>::load(v);
        a.i = j;
        return a;
    }
    // Order-independent: the earlier candidate wins unless the later is strictly better, and a
    // NaN beats every number (the first NaN, as the CPU's scan stops at it).
    static __device__ __forceinline__ Acc combine(Acc a, Acc b) {
        if (a.i < 0) return b;
        if (b.i < 0) return a;
        const bool a_first = a.i < b.i;
        Acc f = a_first ? a : b, s = a_first ? b : a;
        if (f.v != f.v) return f;
        if (s.v != s.v) return s;
        if (MAX ? (s.v > f.v) : (s.v < f.v)) return s;
        return f;
    }
    static __device__ __forceinline__ Acc shfl_down(unsigned mask, Acc a, int off) {
        Acc r;
        r.v = __shfl_down_sync(mask, a.v, off);
        r.i = __shfl_down_sync(mask, a.i, off);
        return r;
    }
    static __device__ __forceinline__ Out result(Acc a) { return result_of(a, RedTag<ARG>()); }
    static __device__ __forceinline__ long long result_of(Acc a, RedTag<true>) { return a.i; }
    static __device__ __forceinline__ T result_of(Acc a, RedTag<false>) { return RedKey<T>::store(a.v); }
};

// Position of reduced element j relative to its row (the reduced layout has offset 0); rank 1
// (the usual case after merging) skips the divisions.
__device__ __forceinline__ long long red_off(const TsLayout& l, long long j) {
    return l.rank == 1 ? j * l.strides[0] : ts_offset(l, j);
}

template <class Op> __device__ __forceinline__ typename Op::Acc warp_reduce(typename Op::Acc a) {
    for (int off = 16; off > 0; off >>= 1) a = Op::combine(a, Op::shfl_down(0xffffffffu, a, off));
    return a;
}

// Whole-block reduction (1-D block, a multiple of 32 threads); the result is in thread 0.
template <class Op> __device__ typename Op::Acc block_reduce(typename Op::Acc a) {
    __shared__ typename Op::Acc red_smem[32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    a = warp_reduce<Op>(a);
    if (lane == 0) red_smem[w] = a;
    __syncthreads();
    if (w == 0) {
        a = lane < (int)(blockDim.x >> 5) ? red_smem[lane] : Op::identity();
        a = warp_reduce<Op>(a);
    }
    __syncthreads();  // red_smem is reused by the next row
    return a;
}

// Reduces elements [lo, hi) of the row at `base` with a stride of `step` between this
// thread's elements, unrolled by 4 with independent accumulators (more loads in flight).
template <class Op, class T>
__device__ __forceinline__ typename Op::Acc accumulate(const T* x, long long base, const TsLayout& rl,
                                                       long long lo, long long hi, long long step) {
    typedef typename Op::Acc Acc;
    Acc a0 = Op::identity(), a1 = a0, a2 = a0, a3 = a0;
    long long j = lo;
    for (; j + 3 * step < hi; j += 4 * step) {
        a0 = Op::combine(a0, Op::make(x[base + red_off(rl, j)], j));
        a1 = Op::combine(a1, Op::make(x[base + red_off(rl, j + step)], j + step));
        a2 = Op::combine(a2, Op::make(x[base + red_off(rl, j + 2 * step)], j + 2 * step));
        a3 = Op::combine(a3, Op::make(x[base + red_off(rl, j + 3 * step)], j + 3 * step));
    }
    for (; j < hi; j += step) a0 = Op::combine(a0, Op::make(x[base + red_off(rl, j)], j));
    return Op::combine(Op::combine(a0, a1), Op::combine(a2, a3));
}

// Writes a row's result, or its split's partial when the row is split over gridDim.y blocks.
template <class Op>
__device__ __forceinline__ void emit(void* out, void* part, long long row, typename Op::Acc a) {
    if (gridDim.y == 1) {
        reinterpret_cast<typename Op::Out*>(out)[row] = Op::result(a);
    } else {
        reinterpret_cast<typename Op::Acc*>(part)[row * gridDim.y + blockIdx.y] = a;
    }
}

template <class Op, class T>
__device__ void reduce_block(TsLayout kl, TsLayout rl, const T* x, void* out, void* part, long long rows,
                             long long r, long long chunk) {
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = lo + chunk < r ? lo + chunk : r;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = ts_offset(kl, row);
        typename Op::Acc a = accumulate<Op>(x, base, rl, lo + threadIdx.x, hi, blockDim.x);
        a = block_reduce<Op>(a);
        if (threadIdx.x == 0) emit<Op>(out, part, row, a);
    }
}

template <class Op, class T>
__device__ void reduce_warp(TsLayout kl, TsLayout rl, const T* x, void* out, long long rows, long long r) {
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows;
         row += warps) {
        const long long base = ts_offset(kl, row);
        typename Op::Acc a = warp_reduce<Op>(accumulate<Op>(x, base, rl, lane, r, 32));
        if (lane == 0) reinterpret_cast<typename Op::Out*>(out)[row] = Op::result(a);
    }
}

// Block (32, COL_Y): threadIdx.x picks one of 32 consecutive rows, threadIdx.y strides over
// the split's reduced elements; a shared-memory tree over y combines them.
#define COL_Y 16
template <class Op, class T>
__device__ void reduce_col(TsLayout kl, TsLayout rl, const T* x, void* out, void* part, long long rows,
                           long long r, long long chunk) {
    typedef typename Op::Acc Acc;
    __shared__ Acc col_smem[COL_Y][33];
    const long long lo = (long long)blockIdx.y * chunk;
    const long long hi = lo + chunk < r ? lo + chunk : r;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (long long tile = (long long)blockIdx.x * 32; tile < rows; tile += (long long)gridDim.x * 32) {
        const long long row = tile + tx;
        Acc a = Op::identity();
        if (row < rows) a = accumulate<Op>(x, ts_offset(kl, row), rl, lo + ty, hi, COL_Y);
        col_smem[ty][tx] = a;
        __syncthreads();
        for (int s = COL_Y / 2; s > 0; s >>= 1) {
            if (ty < s) col_smem[ty][tx] = Op::combine(col_smem[ty][tx], col_smem[ty + s][tx]);
            __syncthreads();
        }
        if (ty == 0 && row < rows) emit<Op>(out, part, row, col_smem[0][tx]);
        __syncthreads();
    }
}

// Combines the `splits` partials of each row (one warp per row).
template <class Op>
__device__ void reduce_finish(const void* part, void* out, long long rows, int splits) {
    const typename Op::Acc* p = reinterpret_cast<const typename Op::Acc*>(part);
    const int lane = threadIdx.x & 31;
    const long long warps = (long long)gridDim.x * (blockDim.x >> 5);
    for (long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows;
         row += warps) {
        typename Op::Acc a = Op::identity();
        for (int s = lane; s < splits; s += 32) a = Op::combine(a, p[row * splits + s]);
        a = warp_reduce<Op>(a);
        if (lane == 0) reinterpret_cast<typename Op::Out*>(out)[row] = Op::result(a);
    }
}

// One op code to one instantiation.
#define RED_DISPATCH(T, op, CALL)                       \
    switch (op) {                                       \
        case R_SUM: { typedef OpSum<T> Op; CALL; } break;                  \
        case R_MAX: { typedef OpCmp<T, true, false> Op; CALL; } break;     \
        case R_MIN: { typedef OpCmp<T, false, false> Op; CALL; } break;    \
        case R_ARGMAX: { typedef OpCmp<T, true, true> Op; CALL; } break;   \
        default: { typedef OpCmp<T, false, true> Op; CALL; } break;        \
    }

#define TS_REDUCE(T, S)                                                                                     \
    extern "C" __global__ void ts_reduce_block_##S(TsLayout kl, TsLayout rl, const T* x, void* out,         \
                                                   void* part, long long rows, long long r, long long chunk, \
                                                   int op) {                                                \
        RED_DISPATCH(T, op, (reduce_block<Op, T>(kl, rl, x, out, part, rows, r, chunk)))                    \
    }                                                                                                       \
    TS_EXPORT(ts_reduce_block_##S)                                                                          \
    extern "C" __global__ void ts_reduce_warp_##S(TsLayout kl, TsLayout rl, const T* x, void* out,          \
                                                  long long rows, long long r, int op) {                    \
        RED_DISPATCH(T, op, (reduce_warp<Op, T>(kl, rl, x, out, rows, r)))                                  \
    }                                                                                                       \
    TS_EXPORT(ts_reduce_warp_##S)                                                                           \
    extern "C" __global__ void ts_reduce_col_##S(TsLayout kl, TsLayout rl, const T* x, void* out,           \
                                                 void* part, long long rows, long long r, long long chunk,   \
                                                 int op) {                                                  \
        RED_DISPATCH(T, op, (reduce_col<Op, T>(kl, rl, x, out, part, rows, r, chunk)))                      \
    }                                                                                                       \
    TS_EXPORT(ts_reduce_col_##S)                                                                            \
    extern "C" __global__ void ts_reduce_finish_##S(const void* part, void* out, long long rows, int splits, \
                                                    int op) {                                               \
        RED_DISPATCH(T, op, (reduce_finish<Op>(part, out, rows, splits)))                                   \
    }                                                                                                       \
    TS_EXPORT(ts_reduce_finish_##S)
TS_FOR_ALL(TS_REDUCE)
