// simt.h: the CUDA execution model on the CPU, so that kernels/*.cu compile as C++17 and run
// on the host (g++ -x c++ -std=c++17 -include sim/simt.h -DTS_SIM). See sim/README.md.
//
// A block's threads are cooperative fibers on one OS thread (simt_runtime.cpp); blocks of a
// grid run in parallel on worker threads. Everything a kernel can name is here or in
// simt_warp.h (warp collectives) and simt_atomic.h (atomics, math).
#pragma once

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmath>
#include <tuple>
#include <type_traits>
#include <utility>

// ------------------------------------------------------------------ the C ABI (DESIGN.md)

extern "C" {
typedef struct {
    unsigned grid[3];
    unsigned block[3];
    unsigned shared_bytes;
    unsigned _reserved;
} simt_launch_cfg;
typedef int (*simt_launcher)(const simt_launch_cfg*, void** args);
simt_launcher simt_find_kernel(const char* name);  // NULL if unknown
const char* simt_last_error(void);                 // last failed launch on this OS thread
void simt_set_schedule(int order);                 // 0 forward, 1 reverse, 2 shuffled
void simt_set_worker_threads(int n);               // 0 = hardware concurrency
// Diagnostics (not part of the driver ABI): ns per fiber context switch, measured now.
double simt_measure_switch_ns(void);
}

// ------------------------------------------------------------------ keywords

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// __restrict__ is a g++ keyword already.

// __shared__ variables are per block. Normally each worker thread runs one block at a time, so
// a thread_local gives each block its own copy. AddressSanitizer does not put redzones around
// thread_local variables, so the ASan build uses plain statics (which it does guard) and the
// launcher tells the runtime to run that kernel's blocks one at a time, process-wide.
#if !defined(TS_SIM_STATIC_SHARED) && defined(__SANITIZE_ADDRESS__)
#define TS_SIM_STATIC_SHARED 1
#elif !defined(TS_SIM_STATIC_SHARED) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TS_SIM_STATIC_SHARED 1
#endif
#endif
#if defined(TS_SIM_STATIC_SHARED)
#define __shared__ static
#define SIMT_KERNEL_FLAGS 1u
#else
#define __shared__ static thread_local
#define SIMT_KERNEL_FLAGS 0u
#endif

// Dynamic shared memory: `extern __shared__` has no C++ meaning, so kernels use this macro
// (common.cuh defines the nvcc version). The buffer is the current block's, sized at launch.
#define TS_DYNAMIC_SHARED(type, name) type* name = reinterpret_cast<type*>(::simt::tl_dyn_smem)

// ------------------------------------------------------------------ vector types, indices

struct uint3 { unsigned x, y, z; };
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(16) double2 { double x, y; };
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

static constexpr int warpSize = 32;

#define SIMT_TLS __attribute__((tls_model("initial-exec")))

namespace simt {
// Set by the scheduler: the block's values once per block, threadIdx at every switch into a
// fiber. A fiber never leaves its OS thread, so thread_local is per-fiber here.
extern thread_local uint3 tl_thread_idx SIMT_TLS;
extern thread_local uint3 tl_block_idx SIMT_TLS;
extern thread_local dim3 tl_block_dim SIMT_TLS;
extern thread_local dim3 tl_grid_dim SIMT_TLS;
extern thread_local unsigned char* tl_dyn_smem SIMT_TLS;

// Out of line on purpose: a call the compiler cannot see into is also a compiler memory
// barrier, which is what a barrier must be.
void syncthreads();
int syncthreads_op(int op, int pred);  // op: 1 count, 2 and, 3 or
void threadfence();

enum WarpOp { W_SYNC = 1, W_SHFL_IDX, W_SHFL_UP, W_SHFL_DOWN, W_SHFL_XOR, W_BALLOT, W_ANY, W_ALL };
unsigned long long warp_collective(int op, unsigned mask, unsigned long long val, int param,
                                   int width);
unsigned activemask();

typedef void (*KernelThunk)(void* ctx);
int run_launch(const char* name, const simt_launch_cfg* cfg, KernelThunk thunk, void* ctx,
               unsigned flags);
void register_kernel(const char* name, simt_launcher fn);
}  // namespace simt

// Read-only on purpose: kernels cannot assign to them on the GPU either.
#define threadIdx (static_cast<const uint3&>(::simt::tl_thread_idx))
#define blockIdx (static_cast<const uint3&>(::simt::tl_block_idx))
#define blockDim (static_cast<const dim3&>(::simt::tl_block_dim))
#define gridDim (static_cast<const dim3&>(::simt::tl_grid_dim))

inline void __syncthreads() { ::simt::syncthreads(); }
inline int __syncthreads_count(int p) { return ::simt::syncthreads_op(1, p); }
inline int __syncthreads_and(int p) { return ::simt::syncthreads_op(2, p); }
inline int __syncthreads_or(int p) { return ::simt::syncthreads_op(3, p); }
inline void __threadfence() { ::simt::threadfence(); }
inline void __threadfence_block() { ::simt::threadfence(); }
inline void __threadfence_system() { ::simt::threadfence(); }

#include "simt_warp.h"
#include "simt_atomic.h"

// ------------------------------------------------------------------ launchers (TS_EXPORT)

namespace simt {
// The kernel and its arguments, copied out of the void** array once per launch; every fiber
// then calls the kernel with copies, as every CUDA thread gets the parameters by value.
template <class... A> struct Bound {
    void (*fn)(A...);
    std::tuple<typename std::decay<A>::type...> args;
};
template <class... A, size_t... I> inline void call_bound(void* p, std::index_sequence<I...>) {
    Bound<A...>* b = static_cast<Bound<A...>*>(p);
    b->fn(std::get<I>(b->args)...);
}
template <class... A> void thunk(void* p) { call_bound<A...>(p, std::index_sequence_for<A...>{}); }
template <class... A, size_t... I>
inline std::tuple<typename std::decay<A>::type...> unpack(void** args, std::index_sequence<I...>) {
    (void)args;
    return std::tuple<typename std::decay<A>::type...>(
        *static_cast<typename std::decay<A>::type*>(args[I])...);
}
int missing_args(const char* name);  // reports a NULL argument array for a kernel with params
template <class... A>
int launch(const char* name, void (*fn)(A...), const simt_launch_cfg* cfg, void** args) {
    if (sizeof...(A) > 0 && args == nullptr) return missing_args(name);
    Bound<A...> b{fn, unpack<A...>(args, std::index_sequence_for<A...>{})};
    return run_launch(name, cfg, &thunk<A...>, &b, SIMT_KERNEL_FLAGS);
}
struct Registrar {
    Registrar(const char* name, simt_launcher fn) { register_kernel(name, fn); }
};
}  // namespace simt

// After `extern "C" __global__ void name(...) {...}`: the C launcher and its registration.
#define TS_EXPORT(name)                                                                 \
    extern "C" int simt_launch_##name(const simt_launch_cfg* cfg, void** args) {        \
        return ::simt::launch(#name, &name, cfg, args);                                  \
    }                                                                                    \
    static const ::simt::Registrar simt_registrar_##name(#name, &simt_launch_##name);
