// simt_runtime.cpp: the scheduler behind simt.h. Each block's threads are fibers on one OS
// thread, resumed in the chosen order until each finishes or waits at a barrier or a warp
// collective; when none can run, the waits are resolved (barrier released, stuck collective or
// divergence reported). Blocks are taken from an atomic counter by the calling thread and a
// pool of helper threads. See README.md. One translation unit: simt_fiber.h and simt_pool.h
// are its parts.
#include "simt.h"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <map>
#include <string>
#include <vector>

#include "simt_fiber.h"
#include "simt_pool.h"

namespace simt {

thread_local uint3 tl_thread_idx SIMT_TLS;
thread_local uint3 tl_block_idx SIMT_TLS;
thread_local dim3 tl_block_dim SIMT_TLS;
thread_local dim3 tl_grid_dim SIMT_TLS;
thread_local unsigned char* tl_dyn_smem SIMT_TLS;

namespace {

enum State : unsigned char { READY, WAIT_BAR, WAIT_WARP, DONE };

struct Fiber {
    uint3 tid;
    unsigned linear;
    State st;
    bool started;
    char* stack;  // lowest usable byte; null until started
    void* sp;
    void* fake;   // ASan's fake-stack handle while switched out
    // what it waits for (warp collective or barrier) and the collective's answer
    int op;
    unsigned mask;
    int param, width;
    unsigned long long val, result;
    int bar_op, bar_pred;
};

// One launch; shared by every OS thread that runs its blocks.
struct Launch {
    const char* name;
    KernelThunk thunk;
    void* ctx;
    dim3 grid, block;
    unsigned shared_bytes, flags;
    unsigned long long nblocks, perm_a, perm_c;
    int schedule;
    std::atomic<unsigned long long> next{0};
    std::atomic<bool> failed{false};
    std::mutex err_mu;
    std::string error;
};

// Per OS thread: the fibers of the block it runs, their stacks, the dynamic shared buffer.
struct Worker {
    void* sched_sp = nullptr;
    std::vector<Fiber> fibers = std::vector<Fiber>(1024);
    std::vector<unsigned> order;
    std::vector<char*> free_stacks;
    size_t stack_size = stack_bytes();
    Fiber* cur = nullptr;
    Launch* L = nullptr;
    unsigned n = 0, nbar = 0, nwarp = 0, ndone = 0;
    bool abort = false;
    std::string err;
    unsigned char* dyn = nullptr;
    size_t dyn_cap = 0;
    const void* sched_lo = nullptr;  // ASan: the bounds of this thread's own stack
    size_t sched_size = 0;
    ~Worker() {
        for (char* s : free_stacks) stack_free(s, stack_size);
        free(dyn);
    }
};

thread_local Worker tl_worker_obj;
thread_local Worker* tl_w SIMT_TLS = nullptr;
thread_local std::string tl_last_error;

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

std::string where(const Worker& w, const Fiber& f) {
    return fmt("kernel %s, block (%u,%u,%u), thread (%u,%u,%u)", w.L->name, tl_block_idx.x,
               tl_block_idx.y, tl_block_idx.z, f.tid.x, f.tid.y, f.tid.z);
}
std::string tname(const Fiber& f) { return fmt("thread (%u,%u,%u)", f.tid.x, f.tid.y, f.tid.z); }

const char* op_name(int op) {
    switch (op) {
        case W_SYNC: return "__syncwarp";
        case W_SHFL_IDX: return "__shfl_sync";
        case W_SHFL_UP: return "__shfl_up_sync";
        case W_SHFL_DOWN: return "__shfl_down_sync";
        case W_SHFL_XOR: return "__shfl_xor_sync";
        case W_BALLOT: return "__ballot_sync";
        case W_ANY: return "__any_sync";
        case W_ALL: return "__all_sync";
    }
    return "?";
}

// ------------------------------------------------------------------ switching

void fiber_main(void* wp);

// Scheduler -> fiber f (starting it on a pooled stack the first time).
void switch_in(Worker& w, Fiber& f) {
    if (!f.started) {
        f.started = true;
        if (w.free_stacks.empty()) {
            f.stack = stack_alloc(w.stack_size);
        } else {
            f.stack = w.free_stacks.back();
            w.free_stacks.pop_back();
        }
        f.sp = ctx_make(f.stack, w.stack_size, &fiber_main, &w);
    }
    w.cur = &f;
    tl_thread_idx = f.tid;
#ifdef SIMT_ASAN
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, w.stack_size);
    simt_ctx_switch(&w.sched_sp, f.sp);
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
    simt_ctx_switch(&w.sched_sp, f.sp);
#endif
    w.cur = nullptr;
}

// Fiber -> scheduler. `exiting`: never resumed again (finished or aborted).
void switch_out(Worker& w, Fiber& f, bool exiting) {
#ifdef SIMT_ASAN
    __sanitizer_start_switch_fiber(exiting ? nullptr : &f.fake, w.sched_lo, w.sched_size);
    simt_ctx_switch(&f.sp, w.sched_sp);
    __sanitizer_finish_switch_fiber(f.fake, &w.sched_lo, &w.sched_size);
#else
    (void)exiting;
    simt_ctx_switch(&f.sp, w.sched_sp);
#endif
}

void fiber_main(void* wp) {
    Worker& w = *static_cast<Worker*>(wp);
#ifdef SIMT_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &w.sched_lo, &w.sched_size);
#endif
    w.L->thunk(w.L->ctx);
    Fiber& f = *w.cur;
    f.st = DONE;
    ++w.ndone;
    switch_out(w, f, true);
    __builtin_trap();  // a finished fiber is never resumed
}

Worker& cur_worker(const char* what) {
    Worker* w = tl_w;
    if (w == nullptr || w->cur == nullptr) {
        fprintf(stderr, "simt: %s called outside a kernel launch\n", what);
        abort();
    }
    return *w;
}

// Reports an error found by the running fiber and abandons the block. The message is built in
// stack buffers: a heap temporary alive in an abandoned fiber's frame would leak.
[[noreturn]] void fail(Worker& w, const char* f, ...) __attribute__((format(printf, 2, 3)));
[[noreturn]] void fail(Worker& w, const char* f, ...) {
    char msg[768], full[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(msg, sizeof msg, f, ap);
    va_end(ap);
    const Fiber& t = *w.cur;
    snprintf(full, sizeof full, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u): %s", w.L->name,
             tl_block_idx.x, tl_block_idx.y, tl_block_idx.z, t.tid.x, t.tid.y, t.tid.z, msg);
    w.err.assign(full);
    w.abort = true;
    switch_out(w, *w.cur, true);
    __builtin_trap();
}

// ------------------------------------------------------------------ warp collectives

// If every lane named in f's mask that has not exited waits at the same collective with the
// same mask, computes each lane's answer, makes them ready and returns true.
bool try_complete(Worker& w, Fiber& f) {
    unsigned base = f.linear & ~31u;
    unsigned group = 0;
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!((f.mask >> lane) & 1u) || base + lane >= w.n) continue;  // absent lanes have exited
        Fiber& g = w.fibers[base + lane];
        if (g.st == DONE) continue;
        if (g.st != WAIT_WARP || g.op != f.op || g.mask != f.mask) return false;
        group |= 1u << lane;
    }
    unsigned long long votes = 0;
    for (unsigned lane = 0; lane < 32; ++lane)
        if ((group >> lane) & 1u && w.fibers[base + lane].val) votes |= 1ull << lane;
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!((group >> lane) & 1u)) continue;
        Fiber& g = w.fibers[base + lane];
        int wd = g.width, p = g.param, src = (int)lane;
        int lo = (int)lane & ~(wd - 1), hi = lo + wd - 1;
        bool ok = true;
        switch (f.op) {
            case W_SHFL_IDX: src = lo + (p & (wd - 1)); break;
            case W_SHFL_UP: src = (int)lane - p; ok = src >= lo; break;
            case W_SHFL_DOWN: src = (int)lane + p; ok = src <= hi; break;
            case W_SHFL_XOR: src = (int)lane ^ (p & 31); ok = src <= hi; break;
        }
        switch (f.op) {
            case W_BALLOT: g.result = votes; break;
            case W_ANY: g.result = votes != 0; break;
            case W_ALL: g.result = votes == group; break;
            case W_SYNC: g.result = 0; break;
            default:
                // A source outside the group is undefined in CUDA; the lane keeps its own value.
                g.result = (ok && src >= 0 && src < 32 && ((group >> src) & 1u))
                               ? w.fibers[base + (unsigned)src].val
                               : g.val;
        }
        g.st = READY;
        --w.nwarp;
    }
    return true;
}

}  // namespace

unsigned long long warp_collective(int op, unsigned mask, unsigned long long val, int param,
                                   int width) {
    Worker& w = cur_worker(op_name(op));
    Fiber& f = *w.cur;
    unsigned lane = f.linear & 31u;
    if (!((mask >> lane) & 1u))
        fail(w, "%s(mask 0x%08x) does not include the calling lane %u", op_name(op), mask, lane);
    if (width < 1 || width > 32 || (width & (width - 1)))
        fail(w, "%s width %d is not a power of two in [1, 32]", op_name(op), width);
    f.op = op;
    f.mask = mask;
    f.val = val;
    f.param = param;
    f.width = width;
    f.st = WAIT_WARP;
    ++w.nwarp;
    if (!try_complete(w, f)) switch_out(w, f, false);  // the last lane to arrive goes on
    return f.result;
}

unsigned activemask() {
    Worker& w = cur_worker("__activemask");
    unsigned base = w.cur->linear & ~31u, m = 0;
    for (unsigned lane = 0; lane < 32 && base + lane < w.n; ++lane)
        if (w.fibers[base + lane].st != DONE) m |= 1u << lane;
    return m;
}

int syncthreads_op(int op, int pred) {
    Worker& w = cur_worker("__syncthreads");
    Fiber& f = *w.cur;
    f.st = WAIT_BAR;
    f.bar_op = op;
    f.bar_pred = pred != 0;
    ++w.nbar;
    switch_out(w, f, false);
    return (int)f.result;
}
void syncthreads() { syncthreads_op(0, 0); }
void yield() {
    Worker* w = tl_w;
    if (w != nullptr && w->cur != nullptr) switch_out(*w, *w->cur, false);  // stays READY
}
void threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

namespace {

// ------------------------------------------------------------------ a block

// Nothing can run: release the barrier, complete collectives whose missing lanes have exited,
// or report why the block is stuck. Returns false with w.err set on an error.
bool resolve(Worker& w) {
    bool progress = false;
    for (unsigned i = 0; i < w.n; ++i)
        if (w.fibers[i].st == WAIT_WARP && try_complete(w, w.fibers[i])) progress = true;
    if (progress) return true;
    for (unsigned i = 0; i < w.n && w.nwarp > 0; ++i) {
        Fiber& f = w.fibers[i];
        if (f.st != WAIT_WARP) continue;
        unsigned base = f.linear & ~31u;
        for (unsigned lane = 0; lane < 32; ++lane) {
            if (!((f.mask >> lane) & 1u) || base + lane >= w.n) continue;
            Fiber& g = w.fibers[base + lane];
            if (g.st == WAIT_BAR) {
                w.err = fmt("%s: barrier divergence: waits at %s(mask 0x%08x) for lane %u (%s), "
                            "which waits at __syncthreads",
                            where(w, f).c_str(), op_name(f.op), f.mask, lane, tname(g).c_str());
                return false;
            }
            if (g.st == WAIT_WARP && (g.op != f.op || g.mask != f.mask)) {
                w.err = fmt("%s: lanes disagree: it waits at %s(mask 0x%08x) while lane %u (%s) "
                            "waits at %s(mask 0x%08x)",
                            where(w, f).c_str(), op_name(f.op), f.mask, lane, tname(g).c_str(),
                            op_name(g.op), g.mask);
                return false;
            }
        }
        w.err = fmt("%s: %s(mask 0x%08x) cannot complete", where(w, f).c_str(), op_name(f.op),
                    f.mask);
        return false;
    }
    // Every live thread waits at __syncthreads.
    if (w.ndone > 0) {
        const Fiber *waiting = nullptr, *gone = nullptr;
        for (unsigned i = 0; i < w.n; ++i) {
            if (w.fibers[i].st == WAIT_BAR && !waiting) waiting = &w.fibers[i];
            if (w.fibers[i].st == DONE && !gone) gone = &w.fibers[i];
        }
        w.err = fmt("%s: barrier divergence: waits at __syncthreads but %s (and %u of %u threads) "
                    "exited without reaching it",
                    where(w, *waiting).c_str(), tname(*gone).c_str(), w.ndone, w.n);
        return false;
    }
    int count = 0;
    for (unsigned i = 0; i < w.n; ++i) count += w.fibers[i].bar_pred;
    for (unsigned i = 0; i < w.n; ++i) {
        Fiber& f = w.fibers[i];
        f.result = f.bar_op == 1 ? count : f.bar_op == 2 ? count == (int)w.n : count > 0;
        f.st = READY;
    }
    w.nbar = 0;
    return true;
}

unsigned long long splitmix(unsigned long long& s) {
    unsigned long long z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Runs one block to completion. Returns false with w.err set on an error.
bool run_block(Worker& w, Launch& L, unsigned long long lin) {
    tl_block_idx = uint3{(unsigned)(lin % L.grid.x), (unsigned)(lin / L.grid.x % L.grid.y),
                         (unsigned)(lin / ((unsigned long long)L.grid.x * L.grid.y))};
    const unsigned bx = L.block.x, by = L.block.y;
    w.n = bx * by * L.block.z;
    for (unsigned i = 0; i < w.n; ++i) {
        Fiber& f = w.fibers[i];
        f.tid = uint3{i % bx, i / bx % by, i / (bx * by)};
        f.linear = i;
        f.st = READY;
        f.started = false;
        f.bar_pred = 0;
        f.bar_op = 0;
    }
    w.nbar = w.nwarp = w.ndone = 0;
    w.abort = false;
    // Fresh shared memory holds garbage on a GPU; all-ones bytes are NaN as floats and -1 as
    // integers, so a read before any write shows.
    memset(w.dyn, 0xff, L.shared_bytes);
    tl_dyn_smem = w.dyn;
    unsigned long long seed = lin * 0x2545F4914F6CDD1Dull + 12345;
    bool ok = true;
    for (;;) {
        if (L.schedule == 2) {
            w.order.resize(w.n);
            for (unsigned i = 0; i < w.n; ++i) w.order[i] = i;
            for (unsigned i = w.n; i > 1; --i) std::swap(w.order[i - 1], w.order[splitmix(seed) % i]);
        }
        for (unsigned k = 0; k < w.n; ++k) {
            unsigned i = L.schedule == 0 ? k : L.schedule == 1 ? w.n - 1 - k : w.order[k];
            Fiber& f = w.fibers[i];
            if (f.st != READY) continue;
            switch_in(w, f);
            if (w.abort) break;
            if (f.st == DONE) w.free_stacks.push_back(f.stack);
        }
        if (w.abort || w.ndone == w.n) break;
        if (w.n - w.ndone - w.nbar - w.nwarp > 0) continue;  // some were made ready mid-pass
        if (!resolve(w)) break;
    }
    if (w.ndone != w.n) {
        ok = false;
        // Abandoned fibers: their stacks go back to the pool, cleared of ASan's frame poison.
        for (unsigned i = 0; i < w.n; ++i) {
            Fiber& f = w.fibers[i];
            if (!f.started || f.st == DONE) continue;
#ifdef SIMT_ASAN
            ASAN_UNPOISON_MEMORY_REGION(f.stack, w.stack_size);
#endif
            w.free_stacks.push_back(f.stack);
        }
    }
    return ok;
}

void run_blocks(Launch& L) {
    Worker& w = tl_worker_obj;
    tl_w = &w;
    w.L = &L;
    tl_block_dim = L.block;
    tl_grid_dim = L.grid;
#ifdef SIMT_ASAN
    // An exact-size allocation, so ASan's redzone catches an access past the launch's bytes.
    free(w.dyn);
    w.dyn = (unsigned char*)malloc(L.shared_bytes);
    w.dyn_cap = 0;
#else
    if (w.dyn_cap < L.shared_bytes || w.dyn == nullptr) {
        free(w.dyn);
        w.dyn_cap = L.shared_bytes < 64 ? 64 : L.shared_bytes;
        w.dyn = (unsigned char*)aligned_alloc(64, (w.dyn_cap + 63) & ~(size_t)63);
    }
#endif
    while (!L.failed.load(std::memory_order_relaxed)) {
        unsigned long long k = L.next.fetch_add(1, std::memory_order_relaxed);
        if (k >= L.nblocks) break;
        unsigned long long lin = L.schedule == 0 ? k
                                 : L.schedule == 1 ? L.nblocks - 1 - k
                                                   : (unsigned long long)(((unsigned __int128)L.perm_a * k + L.perm_c) % L.nblocks);
        if (!run_block(w, L, lin)) {
            std::lock_guard<std::mutex> g(L.err_mu);
            if (!L.failed.exchange(true)) L.error = w.err;
            break;
        }
    }
    w.L = nullptr;
    tl_w = nullptr;
}

// ------------------------------------------------------------------ settings, registry

std::atomic<int> g_schedule{-1}, g_workers{-1};

int env_int(const char* name, int dflt) {
    const char* e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}
int schedule() {
    int s = g_schedule.load();
    return s >= 0 ? s : env_int("SIMT_SCHEDULE", 0);
}
int workers() {
    int n = g_workers.load();
    if (n < 0) n = env_int("SIMT_WORKERS", 0);
    if (n <= 0) n = (int)std::thread::hardware_concurrency();
    return n < 1 ? 1 : n;
}

std::mutex& static_shared_mu() {
    static std::mutex m;
    return m;
}

std::map<std::string, simt_launcher>& registry() {
    static std::map<std::string, simt_launcher> m;
    return m;
}
std::mutex& registry_mu() {
    static std::mutex m;
    return m;
}

int launch_error(const std::string& msg) {
    tl_last_error = msg;
    return 1;
}

}  // namespace

int missing_args(const char* name) {
    return launch_error(fmt("kernel %s: the argument array is NULL", name));
}

void register_kernel(const char* name, simt_launcher fn) {
    std::lock_guard<std::mutex> g(registry_mu());
    registry().emplace(name, fn);
}

int run_launch(const char* name, const simt_launch_cfg* cfg, KernelThunk thunk, void* ctx,
               unsigned flags) {
    if (cfg == nullptr) return launch_error(fmt("kernel %s: the launch configuration is NULL", name));
    if (tl_w != nullptr) return launch_error(fmt("kernel %s: launched from inside a kernel", name));
    const unsigned* g = cfg->grid;
    const unsigned* b = cfg->block;
    unsigned long long threads = (unsigned long long)b[0] * b[1] * b[2];
    std::string bad;
    if (!g[0] || !g[1] || !g[2] || !b[0] || !b[1] || !b[2])
        bad = "a grid or block dimension is zero";
    else if (g[0] > 2147483647u || g[1] > 65535u || g[2] > 65535u)
        bad = "the grid exceeds (2147483647, 65535, 65535)";
    else if (b[0] > 1024u || b[1] > 1024u || b[2] > 64u)
        bad = "the block exceeds (1024, 1024, 64)";
    else if (threads > 1024)
        bad = fmt("%llu threads per block exceed 1024", threads);
    else if (cfg->shared_bytes > 48u * 1024u)
        bad = fmt("%u bytes of dynamic shared memory exceed 48 KiB (sm_80 without opt-in)",
                  cfg->shared_bytes);
    if (!bad.empty())
        return launch_error(fmt("kernel %s: invalid launch grid (%u,%u,%u) block (%u,%u,%u) shared "
                                "%u: %s",
                                name, g[0], g[1], g[2], b[0], b[1], b[2], cfg->shared_bytes,
                                bad.c_str()));
    Launch L;
    L.name = name;
    L.thunk = thunk;
    L.ctx = ctx;
    L.grid = dim3(g[0], g[1], g[2]);
    L.block = dim3(b[0], b[1], b[2]);
    L.shared_bytes = cfg->shared_bytes;
    L.flags = flags;
    L.nblocks = (unsigned long long)g[0] * g[1] * g[2];
    L.schedule = schedule();
    // Shuffled block order: k -> (a k + c) mod n, a bijection when gcd(a, n) = 1.
    L.perm_a = 1;
    L.perm_c = 0;
    if (L.schedule == 2 && L.nblocks > 1) {
        auto gcd = [](unsigned long long x, unsigned long long y) {
            while (y) { unsigned long long t = x % y; x = y; y = t; }
            return x;
        };
        L.perm_a = 0x9E3779B97F4A7C15ull % L.nblocks;
        while (L.perm_a == 0 || gcd(L.perm_a, L.nblocks) != 1) L.perm_a = (L.perm_a + 1) % L.nblocks;
        L.perm_c = 0x632BE59BD9B4E019ull % L.nblocks;
    }
    int nw = workers();
    if (flags & 1u) {
        // __shared__ variables are plain statics in this kernel (ASan build): one block at a
        // time in the whole process.
        std::lock_guard<std::mutex> lk(static_shared_mu());
        run_blocks(L);
    } else if (L.nblocks < 2 || nw < 2 ||
               !pool_run([](void* l) { run_blocks(*static_cast<Launch*>(l)); }, &L,
                         (int)std::min<unsigned long long>(nw - 1, L.nblocks - 1))) {
        run_blocks(L);  // one block, one worker, or the pool is busy with another launch
    }
    if (L.failed.load()) return launch_error(L.error);
    return 0;
}

}  // namespace simt

// ------------------------------------------------------------------ the C ABI

extern "C" simt_launcher simt_find_kernel(const char* name) {
    if (name == nullptr) return nullptr;
    std::lock_guard<std::mutex> g(simt::registry_mu());
    auto it = simt::registry().find(name);
    return it == simt::registry().end() ? nullptr : it->second;
}
extern "C" const char* simt_last_error(void) { return simt::tl_last_error.c_str(); }
extern "C" void simt_set_schedule(int order) { simt::g_schedule.store(order < 0 || order > 2 ? 0 : order); }
extern "C" void simt_set_worker_threads(int n) { simt::g_workers.store(n < 0 ? 0 : n); }

