// Self-test driver for the SIMT shim: launches the kernels of tests/*.cu by name through the C
// ABI, as the Rust sim driver does, and prints PASS/FAIL per check. Exit status: failures.
// `--child MODE` runs one planted out-of-bounds kernel (the ASan checks run it in a subprocess).
#include "common.cuh"

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
static const bool kAsan = true;
#else
static const bool kAsan = false;
#endif

static int g_pass = 0, g_fail = 0;
static void check(bool ok, const std::string& name, const std::string& detail = "") {
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : ": ",
           detail.c_str());
    fflush(stdout);
    (ok ? g_pass : g_fail)++;
}

static int launch(const char* kernel, dim3 g, dim3 b, unsigned shared, std::vector<void*> args) {
    simt_launcher f = simt_find_kernel(kernel);
    if (f == nullptr) {
        printf("FAIL kernel %s is not registered\n", kernel);
        exit(2);
    }
    simt_launch_cfg c = {{g.x, g.y, g.z}, {b.x, b.y, b.z}, shared, 0};
    return f(&c, args.data());
}
static double thread_cpu_ms() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
}
static bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }
static double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// ------------------------------------------------------------------ execution model

static void test_registry() {
    check(simt_find_kernel("ts_test_reduce_shared") != nullptr, "registry finds a kernel");
    check(simt_find_kernel("ts_no_such_kernel") == nullptr, "registry: unknown name is NULL");
}

static std::vector<float> reduce_run(const char* k, const std::vector<float>& in, int sched) {
    simt_set_schedule(sched);
    long long n = (long long)in.size();
    unsigned blocks = (unsigned)((n + 255) / 256);
    std::vector<float> out(blocks, -1.0f);
    const float* pin = in.data();
    float* pout = out.data();
    if (launch(k, dim3(blocks), dim3(256), 0, {&pin, &pout, &n}) != 0)
        printf("  launch error: %s\n", simt_last_error());
    return out;
}

static void test_reductions() {
    std::vector<float> in(256 * 40 + 77);
    for (size_t i = 0; i < in.size(); ++i) in[i] = (float)(i % 13);
    std::vector<float> want((in.size() + 255) / 256, 0.0f);
    for (size_t i = 0; i < in.size(); ++i) want[i / 256] += in[i];
    const char* names[] = {"forward", "reverse", "shuffled"};
    for (int s = 0; s < 3; ++s)
        check(reduce_run("ts_test_reduce_shared", in, s) == want,
              std::string("shared-memory reduction, ") + names[s] + " schedule");
    std::vector<float> r[3];
    int wrong = 0;
    for (int s = 0; s < 3; ++s) {
        r[s] = reduce_run("ts_test_reduce_missing_sync", in, s);
        wrong += r[s] != want;
    }
    check(wrong > 0 && !(r[0] == r[1] && r[1] == r[2]),
          "missing __syncthreads exposed: schedules disagree",
          std::to_string(wrong) + " of 3 schedules wrong; block 0 gives " + std::to_string(r[0][0]) +
              " / " + std::to_string(r[1][0]) + " / " + std::to_string(r[2][0]) + ", want " +
              std::to_string(want[0]));
    simt_set_schedule(0);
}

template <class T> static void warp_case(const char* sfx) {
    const long long n = 3 * 256 + 40;
    std::vector<T> in(n), allred(n), scan(n);
    for (long long i = 0; i < n; ++i) in[i] = (T)((i * 7) % 11);
    unsigned blocks = (unsigned)((n + 255) / 256);
    std::vector<T> out(blocks);
    const T* pin = in.data();
    T *po = out.data(), *pa = allred.data(), *ps = scan.data();
    std::string k = std::string("ts_test_warp_reduce_") + sfx;
    bool ok = true;
    for (int s = 0; s < 3; ++s) {
        simt_set_schedule(s);
        ok &= launch(k.c_str(), dim3(blocks), dim3(256), 0, {&pin, &po, &pa, &ps, (void*)&n}) == 0;
        for (unsigned b = 0; b < blocks; ++b) {
            T want = 0;
            for (long long i = b * 256; i < n && i < (long long)(b + 1) * 256; ++i) want += in[i];
            ok &= out[b] == want;
        }
        for (long long i = 0; i < n; ++i) {
            long long w0 = i & ~31ll;
            T all = 0, pre = 0;
            for (long long j = w0; j < w0 + 32; ++j) all += j < n ? in[j] : T(0);
            for (long long j = w0; j <= i; ++j) pre += in[j];
            ok &= allred[i] == all && scan[i] == pre;
        }
    }
    simt_set_schedule(0);
    check(ok, std::string("warp shuffles (down, xor, up) reduce and scan, ") + sfx);
}

static void test_shuffles() {
    warp_case<int>("i32");
    warp_case<unsigned>("u32");
    warp_case<float>("f32");
    warp_case<double>("f64");
    warp_case<long long>("i64");
    bool ok = true;
    for (int width : {1, 2, 8, 16, 32}) {
        std::vector<int> a(64), x(64), d(64);
        int *pa = a.data(), *px = x.data(), *pd = d.data();
        ok &= launch("ts_test_shfl_width", dim3(1), dim3(64), 0, {&pa, &px, &pd, &width}) == 0;
        for (int t = 0; t < 64; ++t) {
            int lane = t & 31, lo = lane & ~(width - 1), hi = lo + width - 1, wb = t & ~31;
            ok &= a[t] == (wb + lo + (3 & (width - 1))) * 10;
            int xs = lane ^ 5;
            ok &= x[t] == (xs <= hi ? wb + xs : t);
            ok &= d[t] == (lane + 3 <= hi ? t + 3 : t);
        }
    }
    check(ok, "__shfl_sync / __shfl_xor_sync / __shfl_down_sync with width 1, 2, 8, 16, 32");
}

static void test_votes() {
    std::vector<unsigned> o(3 * 16, 99);
    unsigned* po = o.data();
    int rc = launch("ts_test_votes", dim3(1), dim3(80), 0, {&po});  // last warp has 16 lanes
    bool ok = rc == 0;
    for (int w = 0; w < 3; ++w) {
        unsigned nl = w < 2 ? 32 : 16, b = 0, half = 0;
        for (unsigned l = 0; l < nl; ++l) b |= (l % 3 == 0 ? 1u : 0u) << l;
        for (unsigned l = 0; l < 16; ++l) half |= (l & 1u) << l;
        const unsigned* r = &o[w * 16];
        ok &= r[0] == b && r[1] == (nl > 17) && r[2] == 0 && r[3] == 1 && r[4] == (nl < 32) &&
              r[5] == half && r[6] == 20 && r[7] == 1 && r[8] == 1 &&
              r[9] == (nl == 32 ? 0xffffffffu : 0xffffu);
    }
    check(ok, "__ballot_sync / __any_sync / __all_sync (full, partial warp, sub-mask), "
              "__syncthreads_count/and/or",
          rc ? simt_last_error() : "");
    std::vector<int> e(32, -1);
    int* pe = e.data();
    rc = launch("ts_test_exited_lanes", dim3(1), dim3(32), 0, {&pe});
    ok = rc == 0;
    for (int l = 0; l < 16; ++l) ok &= e[l] == (l < 15 ? l + 1 : 15);
    check(ok, "collective naming lanes that exited completes (sm_70+ rule)", rc ? simt_last_error() : "");
}

static void test_detection() {
    std::vector<int> buf(64, 0);
    int* pb = buf.data();
    struct Case { const char* kernel; unsigned threads; const char* what; std::vector<const char*> words; };
    std::vector<Case> cases = {
        {"ts_test_bad_mask", 32, "shuffle whose mask leaves out the calling lane",
         {"ts_test_bad_mask", "block (", "thread (0,0,0)", "does not include the calling lane"}},
        {"ts_test_mask_disagree", 32, "lanes calling a shuffle with different masks",
         {"ts_test_mask_disagree", "lanes disagree", "mask 0x00000003"}},
        {"ts_test_op_disagree", 32, "half a warp at __ballot_sync, half at __shfl_sync",
         {"ts_test_op_disagree", "lanes disagree", "__ballot_sync", "__shfl_sync"}},
        {"ts_test_divergent_exit", 64, "barrier divergence: threads exit before __syncthreads",
         {"ts_test_divergent_exit", "barrier divergence", "exited"}},
        {"ts_test_divergent_warp", 64, "barrier divergence: warp collective vs __syncthreads",
         {"ts_test_divergent_warp", "barrier divergence", "thread (0,0,0)", "__syncthreads"}},
    };
    for (const Case& c : cases) {
        for (int s = 0; s < 3; ++s) {
            simt_set_schedule(s);
            auto t0 = std::chrono::steady_clock::now();
            int rc = launch(c.kernel, dim3(3), dim3(c.threads), 0, {&pb});
            std::string msg = simt_last_error();
            bool ok = rc != 0;
            for (const char* w : c.words) ok &= contains(msg, w);
            if (s == 0 || !ok)
                check(ok, std::string("reports ") + c.what + (s ? " (schedule " + std::to_string(s) + ")" : ""),
                      msg + " [" + std::to_string(ms_since(t0)) + " ms]");
        }
    }
    simt_set_schedule(0);
    // The shim keeps working after a failed launch (abandoned fibers and stacks are reclaimed).
    std::vector<float> in(1024, 1.0f);
    check(reduce_run("ts_test_reduce_shared", in, 0) == std::vector<float>(4, 256.0f),
          "launches after reported errors still work");

    struct Cfg { dim3 g, b; unsigned sh; const char* what; const char* word; };
    std::vector<Cfg> cfgs = {
        {dim3(1), dim3(1024, 2), 0, "2048 threads per block", "2048 threads per block exceed 1024"},
        {dim3(1), dim3(1025), 0, "block.x 1025", "exceeds (1024, 1024, 64)"},
        {dim3(1), dim3(1, 1, 65), 0, "block.z 65", "exceeds (1024, 1024, 64)"},
        {dim3(0), dim3(32), 0, "zero grid", "zero"},
        {dim3(1), dim3(32, 0), 0, "zero block.y", "zero"},
        {dim3(1, 65536), dim3(32), 0, "grid.y 65536", "grid exceeds"},
        {dim3(2147483648u), dim3(32), 0, "grid.x 2^31", "grid exceeds"},
        {dim3(1), dim3(32), 48 * 1024 + 1, "dynamic shared 48 KiB + 1", "exceed 48 KiB"},
    };
    for (const Cfg& c : cfgs) {
        int rc = launch("ts_test_noop", c.g, c.b, c.sh, {&pb});
        std::string msg = simt_last_error();
        check(rc != 0 && contains(msg, "ts_test_noop") && contains(msg, c.word),
              std::string("rejects launch: ") + c.what, msg);
    }
    int rc = launch("ts_test_noop", dim3(2, 2, 2), dim3(16, 8, 8), 48 * 1024, {&pb});
    check(rc == 0, "accepts launch: block (16,8,8) = 1024 threads, 48 KiB dynamic shared",
          rc ? simt_last_error() : "");
}

// ------------------------------------------------------------------ atomics, concurrency

struct TsTestCounters {  // the same struct as atomics.cu
    int add_i;
    unsigned add_u;
    unsigned long long add_ull;
    float add_f;
    double add_d;
    int max_i, min_i;
    unsigned max_u, min_u;
    long long max_ll, min_ll;
    int cas_i;
    unsigned long long cas_ull;
    int exch_count;
    int exch_slot;
};

static bool atomics_once(unsigned blocks, unsigned threads, std::string* why) {
    TsTestCounters c = {};
    c.max_i = -2147483647 - 1;
    c.min_i = 2147483647;
    c.max_u = 0;
    c.min_u = 0xffffffffu;
    c.max_ll = -(1ll << 62);
    c.min_ll = 1ll << 62;
    TsTestCounters* pc = &c;
    if (launch("ts_test_atomics", dim3(blocks), dim3(threads), 0, {&pc}) != 0) {
        *why = simt_last_error();
        return false;
    }
    long long n = (long long)blocks * threads;
    bool ok = c.add_i == n && c.add_u == 2 * n && c.add_ull == 3ull * n && c.add_f == (float)n &&
              c.add_d == 0.5 * n && c.max_i == n - 1 && c.min_i == -(n - 1) &&
              c.max_u == 3 * (n - 1) && c.min_u == 7 && c.max_ll == (n - 1) * 1000000000ll &&
              c.min_ll == -(n - 1) * 1000000000ll && c.cas_i == n && c.cas_ull == 5ull * n &&
              c.exch_count == n - 1;
    if (!ok) *why = "add_i " + std::to_string(c.add_i) + " of " + std::to_string(n);
    return ok;
}

static void test_atomics() {
    std::string why;
    simt_set_worker_threads(4);
    check(atomics_once(1000, 256, &why), "atomics from 1000 blocks x 256 threads on 4 workers: exact", why);
    simt_set_worker_threads(0);
    check(atomics_once(1000, 256, &why), "atomics, hardware worker count: exact", why);
    // Launches from several OS threads at once (the Rust tests do this).
    std::vector<std::thread> ts;
    std::vector<int> oks(4, 0);
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&oks, t] {
            std::string w;
            int ok = 1;
            for (int r = 0; r < 10; ++r) ok &= atomics_once(64, 128, &w);
            oks[t] = ok;
        });
    for (auto& t : ts) t.join();
    check(oks == std::vector<int>(4, 1), "concurrent launches from 4 OS threads");

    std::mt19937 rng(7);
    std::vector<unsigned char> in(1 << 20);
    for (auto& b : in) b = (unsigned char)(rng() % 251);
    std::vector<unsigned> hist(256, 0), want(256, 0);
    for (unsigned char b : in) want[b]++;
    const unsigned char* pin = in.data();
    unsigned* ph = hist.data();
    long long n = (long long)in.size();
    int rc = launch("ts_test_histogram", dim3(64), dim3(256), 0, {&pin, &ph, &n});
    check(rc == 0 && hist == want, "shared-memory histogram with shared and global atomics");
}

// ------------------------------------------------------------------ shared memory kernels

static void test_gemm() {
    const int M = 128, N = 128, K = 128;
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> A(M * K), B(K * N), C(M * N), ref(M * N);
    for (auto& x : A) x = u(rng);
    for (auto& x : B) x = u(rng);
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int k = 0; k < K; ++k) s += (double)A[i * K + k] * B[k * N + j];
            ref[i * N + j] = (float)s;
        }
    const float *pa = A.data(), *pb = B.data();
    float* pc = C.data();
    int m = M, n = N, k = K;
    unsigned shared = 2 * 16 * 16 * sizeof(float);
    bool ok = true;
    double best = 1e9;
    for (int s = 0; s < 3; ++s) {
        simt_set_schedule(s);
        std::fill(C.begin(), C.end(), 0.0f);
        ok &= launch("ts_test_sgemm_tiled", dim3(N / 16, M / 16), dim3(16, 16), shared, {&pa, &pb, &pc, &m, &n, &k}) == 0;
        for (int i = 0; i < M * N; ++i) ok &= std::fabs(C[i] - ref[i]) <= 1e-4f * (1.0f + std::fabs(ref[i]));
    }
    simt_set_schedule(0);
    check(ok, "2-D tiled SGEMM 128x128x128 in dynamic shared memory matches a naive loop (3 schedules)");
    // Wall time with the default workers (informative: it depends on the machine's load), and
    // the CPU time of one worker doing all 64 blocks (the checked figure).
    for (int r = 0; r < 5; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        launch("ts_test_sgemm_tiled", dim3(N / 16, M / 16), dim3(16, 16), shared, {&pa, &pb, &pc, &m, &n, &k});
        best = std::min(best, ms_since(t0));
    }
    simt_set_worker_threads(1);
    double cpu = 1e9;
    for (int r = 0; r < 5; ++r) {
        double c0 = thread_cpu_ms();
        launch("ts_test_sgemm_tiled", dim3(N / 16, M / 16), dim3(16, 16), shared, {&pa, &pb, &pc, &m, &n, &k});
        cpu = std::min(cpu, thread_cpu_ms() - c0);
    }
    simt_set_worker_threads(0);
    char t[200];
    snprintf(t, sizeof t, "%.2f ms CPU on one worker; %.2f ms wall on %u workers (best of 5; 64 blocks x 256 "
             "threads x 16 barriers)", cpu, best, std::thread::hardware_concurrency());
    if (kAsan)
        printf("INFO SGEMM 128^3 under ASan: %s\n", t);
    else
        check(cpu < 50.0, "SGEMM 128^3 under 50 ms", t);

    const int R = 100, Cc = 70;
    std::vector<float> in(R * Cc), out(R * Cc, -1.0f);
    for (int i = 0; i < R * Cc; ++i) in[i] = (float)i;
    const float* pi = in.data();
    float* po = out.data();
    int r_ = R, c_ = Cc;
    int rc = launch("ts_test_transpose", dim3((Cc + 31) / 32, (R + 31) / 32), dim3(32, 8), 0, {&pi, &po, &r_, &c_});
    ok = rc == 0;
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < Cc; ++j) ok &= out[j * R + i] == in[i * Cc + j];
    check(ok, "transpose through __shared__ float tile[32][33]");

    std::vector<float> v(5000);
    for (auto& x : v) x = (float)(rng() % 97);
    long long nv = (long long)v.size();
    std::vector<int> am((nv + 255) / 256, -1);
    const float* pv = v.data();
    int* pam = am.data();
    ok = true;
    for (int s = 0; s < 3; ++s) {
        simt_set_schedule(s);
        ok &= launch("ts_test_argmax", dim3((unsigned)am.size()), dim3(256), 0, {&pv, &pam, &nv}) == 0;
        for (size_t b = 0; b < am.size(); ++b) {
            long long bi = (long long)b * 256;
            for (long long i = b * 256; i < nv && i < (long long)(b + 1) * 256; ++i)
                if (v[i] > v[bi]) bi = i;
            ok &= am[b] == bi;
        }
    }
    simt_set_schedule(0);
    check(ok, "arg-max through a __shared__ array of structs (3 schedules)");
}

static void test_fast_path() {
    const long long n = 1 << 20;
    std::vector<float> x(n), y(n);
    for (long long i = 0; i < n; ++i) { x[i] = (float)(i % 100); y[i] = 1.0f; }
    const float* px = x.data();
    float* py = y.data();
    double a = 2.0, best = 1e9;
    long long nn = n;
    bool ok = true;
    for (int r = 0; r < 3; ++r) {
        auto t0 = std::chrono::steady_clock::now();
        ok &= launch("ts_test_axpy", dim3(4096), dim3(256), 0, {&px, &py, &a, &nn}) == 0;
        best = std::min(best, ms_since(t0));
    }
    for (long long i = 0; i < n; ++i) ok &= y[i] == 1.0f + 6.0f * (float)(i % 100);
    char t[200];
    simt_set_worker_threads(1);
    double c0 = thread_cpu_ms();
    ok &= launch("ts_test_axpy", dim3(4096), dim3(256), 0, {&px, &py, &a, &nn}) == 0;
    double cpu = thread_cpu_ms() - c0;
    simt_set_worker_threads(0);
    snprintf(t, sizeof t, "2^20 threads: %.1f ns CPU per thread on one worker; %.2f ms wall on the default workers",
             cpu * 1e6 / n, best);
    check(ok, "barrier-free elementwise kernel (one switch in and out per thread)", t);

    TsLayout l = {};
    l.rank = 2;
    l.offset = 1;
    l.shape[0] = 4; l.shape[1] = 3;
    l.strides[0] = 1; l.strides[1] = 4;  // the transpose of a 3x4 row-major matrix at offset 1
    std::vector<float> in(13), out(12, -1.0f);
    for (int i = 0; i < 13; ++i) in[i] = (float)i;
    const float* pi = in.data();
    float* po = out.data();
    int rc = launch("ts_test_gather_layout", dim3(1), dim3(32), 0, {&pi, &po, &l});
    ok = rc == 0;
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 3; ++j) ok &= out[i * 3 + j] == in[1 + j * 4 + i];
    check(ok, "TsLayout passed by value through the void** argument array");
}

extern "C" int ts_test_noargs_result();

static void test_indices() {
    dim3 g(3, 2, 2), b(4, 3, 5);
    unsigned nt = b.x * b.y * b.z, nb = g.x * g.y * g.z;
    std::vector<int> out(3 * nt * nb, -1);
    int* po = out.data();
    bool ok = true;
    for (int s = 0; s < 3; ++s) {
        simt_set_schedule(s);
        ok &= launch("ts_test_indices", g, b, 0, {&po}) == 0;
        for (unsigned bz = 0; bz < g.z; ++bz) for (unsigned by = 0; by < g.y; ++by) for (unsigned bx = 0; bx < g.x; ++bx)
        for (unsigned tz = 0; tz < b.z; ++tz) for (unsigned ty = 0; ty < b.y; ++ty) for (unsigned tx = 0; tx < b.x; ++tx) {
            unsigned bl = bx + g.x * (by + g.y * bz), tl = tx + b.x * (ty + b.y * tz);
            const int* o = &out[3 * (bl * nt + tl)];
            ok &= o[0] == (int)(bx * 100 + tx) && o[1] == (int)(by * 100 + ty) && o[2] == (int)(bz * 100 + tz);
        }
    }
    simt_set_schedule(0);
    check(ok, "threadIdx/blockIdx/blockDim/gridDim in a 3-D grid of 3-D blocks (3 schedules)");
    int rc = launch("ts_test_noargs", dim3(1), dim3(256), 0, {});
    check(rc == 0 && ts_test_noargs_result() == 256,
          "kernel without parameters; spin lock in shared memory (failed atomicCAS yields)",
          rc ? simt_last_error() : "count " + std::to_string(ts_test_noargs_result()));
}

// ------------------------------------------------------------------ ASan (subprocess)

static int child(const std::string& mode) {
    std::vector<float> buf(32, 0.0f);
    float* p = buf.data();
    long long n = 32;
    int k = 7;
    int rc = 0;
    if (mode == "oob_shared") rc = launch("ts_test_oob_shared", dim3(1), dim3(32), 0, {&p});
    if (mode == "oob_shared_tmpl") rc = launch("ts_test_oob_shared_tmpl", dim3(1), dim3(32), 0, {&p});
    if (mode == "oob_dynamic") rc = launch("ts_test_oob_dynamic", dim3(1), dim3(32), 32 * 4, {&p});
    if (mode == "oob_global") rc = launch("ts_test_oob_global", dim3(1), dim3(32), 0, {&p, &n});
    if (mode == "oob_stack") rc = launch("ts_test_oob_stack", dim3(1), dim3(32), 0, {&p, &k});
    fprintf(stderr, "child %s finished without a report (rc %d)\n", mode.c_str(), rc);
    return 0;
}

static std::string run_child(const std::string& mode, int* status) {
    int fd[2];
    if (pipe(fd) != 0) return "pipe failed";
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        dup2(fd[1], 1);
        close(fd[0]);
        execl("/proc/self/exe", "simt_tests", "--child", mode.c_str(), (char*)nullptr);
        _exit(127);
    }
    close(fd[1]);
    std::string out;
    char b[4096];
    ssize_t r;
    while ((r = read(fd[0], b, sizeof b)) > 0) out.append(b, (size_t)r);
    close(fd[0]);
    waitpid(pid, status, 0);
    return out;
}

static void test_asan() {
    struct Case { const char* mode; const char* report; const char* what; };
    Case cases[] = {
        {"oob_shared", "global-buffer-overflow", "static __shared__ array written one past its end"},
        {"oob_shared_tmpl", "global-buffer-overflow", "static __shared__ array in a template"},
        {"oob_dynamic", "heap-buffer-overflow", "dynamic shared memory written past the launch's bytes"},
        {"oob_global", "heap-buffer-overflow", "global buffer written one past its end"},
        {"oob_stack", "stack-buffer-overflow", "local array read past its end on a fiber stack"},
    };
    for (const Case& c : cases) {
        if (!kAsan) {
            printf("SKIP ASan: %s (needs the -fsanitize=address build)\n", c.what);
            continue;
        }
        int st = 0;
        std::string out = run_child(c.mode, &st);
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) != 0 && contains(out, "AddressSanitizer") &&
                  contains(out, c.report);
        size_t at = out.find("ERROR: AddressSanitizer");
        std::string line = at == std::string::npos ? out.substr(0, 200) : out.substr(at, out.find('\n', at) - at);
        check(ok, std::string("ASan catches ") + c.what, line);
    }
}

// ------------------------------------------------------------------ f16 / bf16 conversions

static unsigned fbits(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static float bitsf(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static bool f16_nan(unsigned short h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static bool bf16_nan(unsigned short h) { return (h & 0x7f80) == 0x7f80 && (h & 0x7f); }
static unsigned short ref_f16(float f) {  // g++'s _Float16: IEEE binary16, round to nearest even
    _Float16 h = (_Float16)f;
    unsigned short b;
    memcpy(&b, &h, 2);
    return b;
}
static float ref_f16_to_f32(unsigned short b) {
    _Float16 h;
    memcpy(&h, &b, 2);
    return (float)h;
}
// bf16 reference by exact comparison with the two neighbouring bf16 values, in double.
static double bf16_value(unsigned short b) {
    if ((b & 0x7fff) == 0x7f80) return (b & 0x8000) ? -ldexp(1.0, 128) : ldexp(1.0, 128);
    return (double)bitsf((unsigned)b << 16);
}
static unsigned short ref_bf16(float f) {
    unsigned short t = (unsigned short)(fbits(f) >> 16);  // toward zero
    double x = f, lo = bf16_value(t);
    if (lo == x || std::isinf(f)) return t;
    double hi = bf16_value((unsigned short)(t + 1));
    double dl = std::fabs(x - lo), dh = std::fabs(hi - x);
    if (dl != dh) return dl < dh ? t : (unsigned short)(t + 1);
    return (t & 1) ? (unsigned short)(t + 1) : t;
}

static void test_halves() {
    int bad = 0;
    for (unsigned h = 0; h < 65536; ++h) {
        float a = ts_f16_to_f32((unsigned short)h), r = ref_f16_to_f32((unsigned short)h);
        if (f16_nan((unsigned short)h) ? !std::isnan(a) : fbits(a) != fbits(r)) ++bad;
        unsigned short back = ts_f32_to_f16(a);
        if (f16_nan((unsigned short)h) ? !f16_nan(back) : back != h) ++bad;
    }
    check(bad == 0, "f16 -> f32 -> f16 for all 65536 bit patterns (vs _Float16)", std::to_string(bad) + " mismatches");
    bad = 0;
    for (unsigned h = 0; h < 65536; ++h) {
        float a = ts_bf16_to_f32((unsigned short)h);
        if (bf16_nan((unsigned short)h) ? !std::isnan(a) : fbits(a) != h << 16) ++bad;
        unsigned short back = ts_f32_to_bf16(a);
        if (bf16_nan((unsigned short)h) ? !bf16_nan(back) : back != h) ++bad;
    }
    check(bad == 0, "bf16 -> f32 -> bf16 for all 65536 bit patterns", std::to_string(bad) + " mismatches");

    // f32 -> half: every value, every midpoint (a tie) between neighbours and the floats next
    // to them, overflow and underflow edges, then random bit patterns.
    std::vector<float> xs;
    for (unsigned h = 0; h < 65536; ++h) {
        for (int half = 0; half < 2; ++half) {
            unsigned short b = (unsigned short)h;
            if (half ? (bf16_nan(b) || (b & 0x7fff) == 0x7f80) : (f16_nan(b) || (b & 0x7fff) == 0x7c00)) continue;
            double a = half ? bf16_value(b) : (double)ref_f16_to_f32(b);
            unsigned short nb = (unsigned short)(b + 1);
            double nxt = half ? bf16_value(nb) : ((nb & 0x7fff) == 0x7c00 ? ((nb & 0x8000) ? -65536.0 : 65536.0)
                                                                           : (double)ref_f16_to_f32(nb));
            float mid = (float)((a + nxt) / 2);
            for (float x : {(float)a, mid, nextafterf(mid, INFINITY), nextafterf(mid, -INFINITY)}) xs.push_back(x);
        }
    }
    for (float x : {INFINITY, -INFINITY, 0.0f, -0.0f, 3.4028235e38f, -3.4028235e38f, 1e-45f, 1.1754944e-38f,
                    65504.0f, 65519.996f, 65520.0f, 1e6f, ldexpf(1.0f, -25), ldexpf(1.0f, -26),
                    nextafterf(ldexpf(1.0f, -25), 1.0f), ldexpf(3.0f, -26)})
        xs.push_back(x);
    std::mt19937 rng(3);
    for (int i = 0; i < 2000000; ++i) xs.push_back(bitsf(rng()));
    int bad16 = 0, badbf = 0;
    std::string ex16, exbf;
    for (float x : xs) {
        unsigned short a = ts_f32_to_f16(x), r = ref_f16(x);
        if (std::isnan(x) ? !f16_nan(a) : a != r) {
            if (!bad16++) { char t[96]; snprintf(t, sizeof t, "x=%a got %04x want %04x", x, a, r); ex16 = t; }
        }
        unsigned short c = ts_f32_to_bf16(x), s = std::isnan(x) ? 0 : ref_bf16(x);
        if (std::isnan(x) ? !bf16_nan(c) : c != s) {
            if (!badbf++) { char t[96]; snprintf(t, sizeof t, "x=%a got %04x want %04x", x, c, s); exbf = t; }
        }
    }
    check(bad16 == 0, "f32 -> f16 rounding (ties to even, overflow, subnormals, NaN) vs _Float16",
          std::to_string(xs.size()) + " values, " + std::to_string(bad16) + " mismatches " + ex16);
    check(badbf == 0, "f32 -> bf16 rounding (ties to even, overflow, NaN) vs exact reference",
          std::to_string(xs.size()) + " values, " + std::to_string(badbf) + " mismatches " + exbf);
    check(ts_f32_to_bf16(bitsf(0x7f7f8000u)) == 0x7f80 && ts_f32_to_f16(65520.0f) == 0x7c00 &&
              ts_f32_to_f16(65519.996f) == 0x7bff && ts_f32_to_f16(ldexpf(1.0f, -25)) == 0 &&
              ts_f32_to_f16(nextafterf(ldexpf(1.0f, -25), 1.0f)) == 1,
          "half edge cases: bf16 max+half-ulp -> inf, f16 65520 -> inf, 65519.996 -> 65504, 2^-25 -> 0");
}

// ------------------------------------------------------------------ main

int main(int argc, char** argv) {
    if (argc == 3 && std::string(argv[1]) == "--child") return child(argv[2]);
    setvbuf(stdout, nullptr, _IOLBF, 0);
    double sw = simt_measure_switch_ns();
    if (kAsan)
        printf("INFO fiber switch under ASan (with annotations): %.1f ns\n", sw);
    else
        check(sw < 100.0, "fiber context switch under 100 ns", std::to_string(sw) + " ns");
    test_registry();
    test_reductions();
    test_shuffles();
    test_votes();
    test_detection();
    test_atomics();
    test_gemm();
    test_fast_path();
    test_indices();
    test_asan();
    test_halves();
    printf("%s: %d passed, %d failed%s\n", g_fail ? "FAIL" : "PASS", g_pass, g_fail, kAsan ? " (ASan build)" : "");
    return g_fail ? 1 : 0;
}
