// matmul.cu: batched, strided GEMM out[z] = a[z] @ b[z], out contiguous [batch, m, n].
// Rust side: src/ops/matmul.rs. CPU counterpart: tensor/src/ops/matmul/cpu.rs (f16/bf16 are
// accumulated in f32 and rounded once to the input dtype, as there).
//
// Every operand is read through its strides: `ab`/`bb` are the (jointly merged) batch layouts
// whose offset is the view's offset, plus the two matrix strides, so transposed and
// broadcast (stride-0) operands need no copy. `fast` bit 0: `a`'s k stride is the small one
// (row-major a); bit 1: `b`'s k stride is (b transposed). It picks which tile dim consecutive
// threads load, so that global loads coalesce either way.
//
// Kernels (256 threads each, a grid-stride loop over batch * m-tiles * n-tiles):
// - ts_matmul_l_<dt>: 128x128 block tile, BK=8, 8x8 register micro-tile per thread.
// - ts_matmul_s_<dt>: 64x64 block tile, BK=16, 4x4 micro-tile (small or few-tile shapes).
// - ts_matmul_tc_<f16|bf16>: tensor cores (mma.sync m16n8k16, f32 accumulators) on sm_80+;
//   under the shim (or any pre-sm_80 pass) it is the scalar 128x128 kernel.
// Both scalar kernels use only __syncthreads between threads, so they run under the shim.
#include "common.cuh"

// Four consecutive shared-memory values into registers (one 128-bit load on the GPU; the
// callers keep the address 16-byte aligned). The shim reads them one by one.
template <class C>
__device__ __forceinline__ void ld4(const C* p, C* d) {
    d[0] = p[0];
    d[1] = p[1];
    d[2] = p[2];
    d[3] = p[3];
}
#ifndef TS_SIM
template <>
__device__ __forceinline__ void ld4<float>(const float* p, float* d) {
    float4 v = *reinterpret_cast<const float4*>(p);
    d[0] = v.x;
    d[1] = v.y;
    d[2] = v.z;
    d[3] = v.w;
}
template <>
__device__ __forceinline__ void ld4<double>(const double* p, double* d) {
    double2 v = *reinterpret_cast<const double2*>(p);
    double2 w = *reinterpret_cast<const double2*>(p + 2);
    d[0] = v.x;
    d[1] = v.y;
    d[2] = w.x;
    d[3] = w.y;
}
#endif

#define TS_MM_THREADS 256

// Which element of an R x K tile (R = m or n rows) a thread's j-th load slot covers:
// (r0 + j * rs, k0 + j * ks). k-fast: consecutive threads take consecutive k (coalesced when
// the k stride is 1); otherwise consecutive rows. `threads` is a multiple of R and of K.
struct LoadSlots {
    int r0, rs, k0, ks;
    static __device__ __forceinline__ LoadSlots make(bool kfast, int tid, int R, int K, int threads) {
        LoadSlots s;
        if (kfast) {
            s.r0 = tid / K; s.rs = threads / K; s.k0 = tid % K; s.ks = 0;
        } else {
            s.r0 = tid % R; s.rs = 0; s.k0 = tid / R; s.ks = threads / R;
        }
        return s;
    }
};

// The scalar tiled GEMM. Shared tiles hold the compute type, k-major (As[k][m], Bs[k][n]) so
// that a thread's micro-tile fragment is contiguous. Double-buffered shared memory plus a
// register prefetch of the next k-tile: one barrier per k-tile.
template <class T, int BM, int BN, int BK, int TM, int TN>
__device__ void gemm_tiled(TsLayout ab, const T* __restrict__ a, long long a_rs, long long a_cs,
                           TsLayout bb, const T* __restrict__ b, long long b_rs, long long b_cs,
                           T* __restrict__ out, long long batches, long long m, long long n, long long k,
                           int fast) {
    typedef typename TsNum<T>::C C;
    constexpr int TX = BN / TN, TY = BM / TM;
    static_assert(TX * TY == TS_MM_THREADS, "one micro-tile per thread");
    constexpr int RM = TM / 4, RN = TN / 4;  // 4-wide groups per thread, spread by BM/RM
    constexpr int SM = BM / RM, SN = BN / RN;
    constexpr int LA = BM * BK / TS_MM_THREADS, LB = BK * BN / TS_MM_THREADS;
    constexpr int PAD = 4;  // keeps rows 16-byte aligned and spreads k-fast stores over banks
    __shared__ __align__(16) C As[2][BK][BM + PAD];
    __shared__ __align__(16) C Bs[2][BK][BN + PAD];

    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    // Load slot j of this thread covers tile element (m0 + j * ms, k0 + j * ks): consecutive
    // threads walk the operand's small-stride dim (256 is a multiple of BM, BN and BK).
    const LoadSlots la = LoadSlots::make(fast & 1, tid, BM, BK, TS_MM_THREADS);
    const LoadSlots lb = LoadSlots::make((fast >> 1) & 1, tid, BN, BK, TS_MM_THREADS);

    const long long mt = (m + BM - 1) / BM, nt = (n + BN - 1) / BN;
    const long long tiles = batches * mt * nt;
    const long long ktiles = (k + BK - 1) / BK;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        const long long tn = t % nt, rest = t / nt, tm = rest % mt, z = rest / mt;
        const long long row0 = tm * BM, col0 = tn * BN;
        // Storage offset of slot 0 at k = 0, and the step from one slot to the next.
        const long long aoff = ts_offset(ab, z) + (row0 + la.r0) * a_rs + la.k0 * a_cs;
        const long long astep = la.rs * a_rs + la.ks * a_cs;
        const long long boff = ts_offset(bb, z) + (col0 + lb.r0) * b_cs + lb.k0 * b_rs;
        const long long bstep = lb.rs * b_cs + lb.ks * b_rs;
        C ra[LA], rb[LB];
        C acc[TM][TN];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) acc[i][j] = C(0);

        // Global -> registers for the k-tile starting at k0 (zeros outside the matrices).
        auto fetch = [&](long long k0) {
#pragma unroll
            for (int j = 0; j < LA; ++j) {
                bool ok = row0 + la.r0 + j * la.rs < m && k0 + la.k0 + j * la.ks < k;
                ra[j] = ok ? TsNum<T>::load(a[aoff + j * astep + k0 * a_cs]) : C(0);
            }
#pragma unroll
            for (int j = 0; j < LB; ++j) {
                bool ok = col0 + lb.r0 + j * lb.rs < n && k0 + lb.k0 + j * lb.ks < k;
                rb[j] = ok ? TsNum<T>::load(b[boff + j * bstep + k0 * b_rs]) : C(0);
            }
        };
        auto stash = [&](int buf) {
#pragma unroll
            for (int j = 0; j < LA; ++j) As[buf][la.k0 + j * la.ks][la.r0 + j * la.rs] = ra[j];
#pragma unroll
            for (int j = 0; j < LB; ++j) Bs[buf][lb.k0 + j * lb.ks][lb.r0 + j * lb.rs] = rb[j];
        };

        if (ktiles > 0) {
            fetch(0);
            stash(0);
            __syncthreads();
        }
        for (long long kt = 0; kt < ktiles; ++kt) {
            const int buf = (int)(kt & 1);
            const bool more = kt + 1 < ktiles;
            if (more) fetch((kt + 1) * BK);  // in flight while this tile is multiplied
#pragma unroll
            for (int kk = 0; kk < BK; ++kk) {
                C af[TM], bf[TN];
#pragma unroll
                for (int r = 0; r < RM; ++r) ld4<C>(&As[buf][kk][r * SM + ty * 4], &af[r * 4]);
#pragma unroll
                for (int r = 0; r < RN; ++r) ld4<C>(&Bs[buf][kk][r * SN + tx * 4], &bf[r * 4]);
#pragma unroll
                for (int i = 0; i < TM; ++i)
#pragma unroll
                    for (int j = 0; j < TN; ++j) acc[i][j] += af[i] * bf[j];
            }
            // The other buffer was last read before the previous barrier: safe to fill now.
            if (more) stash(buf ^ 1);
            // Every iteration ends with a barrier, so the next tile's first stash is safe too.
            __syncthreads();
        }

        T* o = out + z * m * n;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const long long row = row0 + (i / 4) * SM + ty * 4 + (i % 4);
            if (row >= m) continue;
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                const long long col = col0 + (j / 4) * SN + tx * 4 + (j % 4);
                if (col < n) o[row * n + col] = TsNum<T>::store(acc[i][j]);
            }
        }
    }
}

#define TS_MM_PARAMS(T)                                                                         \
    TsLayout ab, const T *a, long long a_rs, long long a_cs, TsLayout bb, const T *b, long long b_rs, \
        long long b_cs, T *out, long long batches, long long m, long long n, long long k, int fast
#define TS_MM_ARGS ab, a, a_rs, a_cs, bb, b, b_rs, b_cs, out, batches, m, n, k, fast

#define TS_MATMUL(T, S)                                                                          \
    extern "C" __global__ void __launch_bounds__(TS_MM_THREADS) ts_matmul_l_##S(TS_MM_PARAMS(T)) { \
        gemm_tiled<T, 128, 128, 8, 8, 8>(TS_MM_ARGS);                                           \
    }                                                                                            \
    TS_EXPORT(ts_matmul_l_##S)                                                                   \
    extern "C" __global__ void __launch_bounds__(TS_MM_THREADS) ts_matmul_s_##S(TS_MM_PARAMS(T)) { \
        gemm_tiled<T, 64, 64, 16, 4, 4>(TS_MM_ARGS);                                            \
    }                                                                                            \
    TS_EXPORT(ts_matmul_s_##S)
TS_FOR_FLOATS(TS_MATMUL)

// ------------------------------------------------------------------ tensor cores (f16/bf16)

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
template <class T> struct TcMma;
template <> struct TcMma<ts_f16> {
    static __device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};
template <> struct TcMma<ts_bf16> {
    static __device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
        asm volatile(
            "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
            "{%8,%9}, {%0,%1,%2,%3};\n"
            : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
};

// Four 8x8 b16 matrices from shared memory; lane l gives the row address of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(unsigned* r, const unsigned short* p) {
    unsigned addr = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

// 128x128 block tile, BK=32, 8 warps as 2 (m) x 4 (n), each a 64x32 warp tile of 4x4 mma
// tiles (16x8). Shared tiles are k-contiguous As[m][k], Bs[n][k] (row.col operands), rows
// padded to 40 halves (80 bytes) so ldmatrix's eight row reads hit distinct banks. Global
// loads take k-pairs packed into one 32-bit shared store; zeros outside the matrices.
template <class T>
__device__ void gemm_tc(TS_MM_PARAMS(T)) {
    constexpr int BM = 128, BN = 128, BK = 32, LDK = BK + 8, P = BM * BK / 2 / TS_MM_THREADS;
    __shared__ __align__(16) unsigned short As[2][BM][LDK];
    __shared__ __align__(16) unsigned short Bs[2][BN][LDK];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    // Slots over k-pairs: pair p covers k = 2p, 2p + 1.
    const LoadSlots la = LoadSlots::make(fast & 1, tid, BM, BK / 2, TS_MM_THREADS);
    const LoadSlots lb = LoadSlots::make((fast >> 1) & 1, tid, BN, BK / 2, TS_MM_THREADS);
    const unsigned short* ah = reinterpret_cast<const unsigned short*>(a);
    const unsigned short* bh = reinterpret_cast<const unsigned short*>(b);
    const long long mt = (m + BM - 1) / BM, nt = (n + BN - 1) / BN;
    const long long tiles = batches * mt * nt, ktiles = (k + BK - 1) / BK;
    for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
        const long long tn = t % nt, rest = t / nt, tm = rest % mt, z = rest / mt;
        const long long row0 = tm * BM, col0 = tn * BN;
        const long long aoff = ts_offset(ab, z) + (row0 + la.r0) * a_rs + 2 * la.k0 * a_cs;
        const long long astep = la.rs * a_rs + 2 * la.ks * a_cs;
        const long long boff = ts_offset(bb, z) + (col0 + lb.r0) * b_cs + 2 * lb.k0 * b_rs;
        const long long bstep = lb.rs * b_cs + 2 * lb.ks * b_rs;
        unsigned ra[P], rb[P];
        float acc[4][4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;

        auto fetch = [&](long long k0) {
#pragma unroll
            for (int j = 0; j < P; ++j) {
                bool rok = row0 + la.r0 + j * la.rs < m;
                long long kk = k0 + 2 * (la.k0 + j * la.ks);
                const unsigned short* p = ah + aoff + j * astep + k0 * a_cs;
                unsigned lo = (rok && kk < k) ? p[0] : 0u;
                unsigned hi = (rok && kk + 1 < k) ? p[a_cs] : 0u;
                ra[j] = lo | (hi << 16);
                rok = col0 + lb.r0 + j * lb.rs < n;
                kk = k0 + 2 * (lb.k0 + j * lb.ks);
                const unsigned short* q = bh + boff + j * bstep + k0 * b_rs;
                lo = (rok && kk < k) ? q[0] : 0u;
                hi = (rok && kk + 1 < k) ? q[b_rs] : 0u;
                rb[j] = lo | (hi << 16);
            }
        };
        auto stash = [&](int buf) {
#pragma unroll
            for (int j = 0; j < P; ++j) {
                *reinterpret_cast<unsigned*>(&As[buf][la.r0 + j * la.rs][2 * (la.k0 + j * la.ks)]) = ra[j];
                *reinterpret_cast<unsigned*>(&Bs[buf][lb.r0 + j * lb.rs][2 * (lb.k0 + j * lb.ks)]) = rb[j];
            }
        };

        if (ktiles > 0) {
            fetch(0);
            stash(0);
            __syncthreads();
        }
        for (long long kt = 0; kt < ktiles; ++kt) {
            const int buf = (int)(kt & 1);
            const bool more = kt + 1 < ktiles;
            if (more) fetch((kt + 1) * BK);
#pragma unroll
            for (int ks = 0; ks < BK; ks += 16) {
                unsigned af[4][4], bf[4][2];
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    ldmatrix_x4(af[i], &As[buf][wm + i * 16 + (lane & 15)][ks + (lane >> 4) * 8]);
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    unsigned r[4];
                    ldmatrix_x4(r, &Bs[buf][wn + j * 16 + (lane >> 4) * 8 + (lane & 7)][ks + ((lane >> 3) & 1) * 8]);
                    bf[2 * j][0] = r[0];
                    bf[2 * j][1] = r[1];
                    bf[2 * j + 1][0] = r[2];
                    bf[2 * j + 1][1] = r[3];
                }
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) TcMma<T>::mma(acc[i][j], af[i], bf[j][0], bf[j][1]);
            }
            if (more) stash(buf ^ 1);
            __syncthreads();
        }

        // Accumulator layout of m16n8: c0,c1 at (lane/4, 2*(lane%4) + {0,1}), c2,c3 eight rows down.
        T* o = out + z * m * n;
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int c = 0; c < 4; ++c) {
                    long long row = row0 + wm + i * 16 + (lane >> 2) + (c >> 1) * 8;
                    long long col = col0 + wn + j * 8 + (lane & 3) * 2 + (c & 1);
                    if (row < m && col < n) o[row * n + col] = TsNum<T>::store(acc[i][j][c]);
                }
    }
}
#define TS_MM_TC_BODY(T) gemm_tc<T>(TS_MM_ARGS)
#else
#define TS_MM_TC_BODY(T) gemm_tiled<T, 128, 128, 8, 8, 8>(TS_MM_ARGS)
#endif

#define TS_MATMUL_TC(T, S)                                                                        \
    extern "C" __global__ void __launch_bounds__(TS_MM_THREADS) ts_matmul_tc_##S(TS_MM_PARAMS(T)) { \
        TS_MM_TC_BODY(T);                                                                         \
    }                                                                                             \
    TS_EXPORT(ts_matmul_tc_##S)
TS_MATMUL_TC(ts_f16, f16)
TS_MATMUL_TC(ts_bf16, bf16)
