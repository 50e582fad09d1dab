// simt_pool.h: helper threads for simt_runtime.cpp (included by it only). The thread that
// launches runs blocks itself; up to n helpers join it on the same job, taking blocks from the
// launch's atomic counter. Helpers are started on demand and sleep between launches.
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>

namespace simt {
namespace {

struct Pool {
    std::mutex launch_mu;  // one pooled launch at a time; other callers run their blocks alone
    std::mutex mu;
    std::condition_variable cv, done_cv;
    void (*fn)(void*) = nullptr;  // the current job, null between launches
    void* arg = nullptr;
    unsigned long long gen = 0;
    int busy = 0, started = 0, joined = 0, max_join = 0;
};
Pool& pool() {
    static Pool* p = new Pool;  // never destroyed: helpers sleep in it until the process exits
    return *p;
}

void helper_loop() {
    Pool& P = pool();
    unsigned long long seen = 0;
    std::unique_lock<std::mutex> lk(P.mu);
    for (;;) {
        P.cv.wait(lk, [&] { return P.fn != nullptr && P.gen != seen; });
        seen = P.gen;
        if (P.joined >= P.max_join) continue;
        ++P.joined;
        ++P.busy;
        void (*fn)(void*) = P.fn;
        void* arg = P.arg;
        lk.unlock();
        fn(arg);
        lk.lock();
        if (--P.busy == 0) P.done_cv.notify_all();
    }
}

// Runs fn(arg) on the calling thread and on up to `helpers` helper threads, and returns when
// all have finished. Returns false, having run nothing, when another launch holds the pool.
bool pool_run(void (*fn)(void*), void* arg, int helpers) {
    Pool& P = pool();
    if (!P.launch_mu.try_lock()) return false;
    {
        std::lock_guard<std::mutex> lk(P.mu);
        for (; P.started < helpers; ++P.started) std::thread(helper_loop).detach();
        P.fn = fn;
        P.arg = arg;
        P.joined = 0;
        P.max_join = helpers;
        ++P.gen;
    }
    P.cv.notify_all();
    fn(arg);
    {
        // A helper that wakes after this sees no job; one that joined is waited for.
        std::unique_lock<std::mutex> lk(P.mu);
        P.fn = nullptr;
        P.done_cv.wait(lk, [&] { return P.busy == 0; });
    }
    P.launch_mu.unlock();
    return true;
}

}  // namespace
}  // namespace simt
