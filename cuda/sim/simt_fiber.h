// simt_fiber.h: fibers for simt_runtime.cpp (included by it only): an x86-64 context switch,
// pooled-stack allocation with guard pages, and a ping-pong that measures the switch.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

#if defined(__SANITIZE_ADDRESS__)
#define SIMT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIMT_ASAN 1
#endif
#endif
#ifdef SIMT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "simt_fiber.h: the fiber switch is written for x86-64"
#endif

// ------------------------------------------------------------------ context switch
// simt_ctx_switch(save, to): push the callee-saved registers, store rsp in *save, load `to`,
// pop and return into the other context. Nothing else needs saving: the switch is a call, so
// the compiler has already spilled every caller-saved register (MXCSR and the x87 control word
// are never changed by kernels). A new fiber's stack is laid out to "return" into
// simt_ctx_entry with r12 = argument and r13 = function.
extern "C" void simt_ctx_switch(void** save, void* to);
extern "C" void simt_ctx_entry();
asm(R"(
    .text
    .p2align 4
    .globl simt_ctx_switch
    .hidden simt_ctx_switch
    .type simt_ctx_switch,@function
simt_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size simt_ctx_switch, .-simt_ctx_switch
    .globl simt_ctx_entry
    .hidden simt_ctx_entry
    .type simt_ctx_entry,@function
simt_ctx_entry:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size simt_ctx_entry, .-simt_ctx_entry
)");

// Lays out a fresh stack so that switching to the returned sp calls fn(arg) on it.
static void* ctx_make(char* lo, size_t size, void (*fn)(void*), void* arg) {
    uintptr_t top = ((uintptr_t)(lo + size)) & ~(uintptr_t)15;
    void** sp = (void**)(top - 72);  // 7 slots; rsp is 16-aligned when simt_ctx_entry calls
    sp[0] = nullptr;                 // r15
    sp[1] = nullptr;                 // r14
    sp[2] = (void*)fn;               // r13
    sp[3] = arg;                     // r12
    sp[4] = nullptr;                 // rbx
    sp[5] = nullptr;                 // rbp: ends frame-pointer backtraces
    sp[6] = (void*)&simt_ctx_entry;  // return address
    return sp;
}

static size_t stack_bytes() {
    static size_t bytes = [] {
        const char* e = getenv("SIMT_STACK_KB");
        long kb = e ? atol(e) : 0;
#ifdef SIMT_ASAN
        if (kb <= 0) kb = 256;  // ASan's redzones make frames several times larger
#else
        if (kb <= 0) kb = 64;
#endif
        return (size_t)kb * 1024;
    }();
    return bytes;
}

// A stack with a PROT_NONE guard page below it, so an overflow faults instead of silently
// writing into the neighbouring fiber's stack.
static char* stack_alloc(size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void* p = mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "simt: cannot map a %zu-byte fiber stack\n", size);
        abort();
    }
    mprotect(p, page, PROT_NONE);
    return (char*)p + page;
}
static void stack_free(char* lo, size_t size) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap(lo - page, size + page);
}

// Ping-pong between this thread and one fiber; the cost of one switch, annotations included.
namespace {
struct PingPong {
    void* main_sp;
    void* fib_sp;
    char* stack;
    size_t size;
    long n;
    const void* main_lo;
    size_t main_size;
};
void pingpong_main(void* p) {
    PingPong& q = *static_cast<PingPong*>(p);
#ifdef SIMT_ASAN
    void* fake = nullptr;
    __sanitizer_finish_switch_fiber(nullptr, &q.main_lo, &q.main_size);
#endif
    for (;;) {
#ifdef SIMT_ASAN
        __sanitizer_start_switch_fiber(&fake, q.main_lo, q.main_size);
        simt_ctx_switch(&q.fib_sp, q.main_sp);
        __sanitizer_finish_switch_fiber(fake, &q.main_lo, &q.main_size);
#else
        simt_ctx_switch(&q.fib_sp, q.main_sp);
#endif
    }
}
}  // namespace

extern "C" double simt_measure_switch_ns(void) {
    PingPong q{};
    q.size = stack_bytes();
    q.stack = stack_alloc(q.size);
    q.fib_sp = ctx_make(q.stack, q.size, &pingpong_main, &q);
    const long n = 1000000;
    // Thread CPU time, so a loaded machine does not inflate the figure.
    timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (long i = 0; i < n; ++i) {
#ifdef SIMT_ASAN
        void* fake = nullptr;
        __sanitizer_start_switch_fiber(&fake, q.stack, q.size);
        simt_ctx_switch(&q.main_sp, q.fib_sp);
        __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
        simt_ctx_switch(&q.main_sp, q.fib_sp);
#endif
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
#ifdef SIMT_ASAN
    ASAN_UNPOISON_MEMORY_REGION(q.stack, q.size);
#endif
    stack_free(q.stack, q.size);
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (2.0 * n);
}

