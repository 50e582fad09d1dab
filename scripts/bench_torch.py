"""PyTorch CPU reference for the kernels in `tensor/benches/kernels.rs` (single thread).

Times the same GEMM, conv2d, softmax and layer_norm shapes as the criterion benchmarks and
prints GFLOP/s (GEMM, conv) or GB/s (one f32 read + one f32 write per element, the same
accounting as the Rust benches). BENCHMARKS.md records the numbers.

    /opt/torchenv/bin/python scripts/bench_torch.py        # torch 2.9.1 on the dev machine
"""
import time

import torch

torch.set_num_threads(1)
torch.manual_seed(0)

WARMUP = 3
MIN_TIME = 2.0  # seconds of timed runs per case, like criterion's measurement_time
MIN_RUNS = 10


def median_seconds(fn):
    for _ in range(WARMUP):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < MIN_RUNS or time.perf_counter() - start < MIN_TIME:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def row(name, seconds, amount, unit):
    rate = amount / seconds / 1e9
    print(f"{name:<48} {seconds * 1e3:9.3f} ms  {rate:8.2f} {unit}")


def main():
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}")
    with torch.inference_mode():
        for m, k, n in [(512, 512, 512), (1024, 1024, 1024), (1576, 384, 1152),
                        (1576, 384, 1536)]:
            a = torch.rand(m, k) * 2 - 1
            b = torch.rand(k, n) * 2 - 1
            row(f"gemm_f32_1thread/torch_matmul/{m}x{k}x{n}",
                median_seconds(lambda: torch.matmul(a, b)), 2 * m * k * n, "GFLOP/s")

        x = torch.rand(8, 64, 56, 56) * 2 - 1
        w = torch.rand(64, 64, 3, 3) * 2 - 1
        flops = 2 * 8 * 64 * 56 * 56 * 64 * 9
        row("conv2d_f32_1thread/torch_conv2d/8x64x56x56_k3_64",
            median_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1)), flops,
            "GFLOP/s")

        for shape in [(48, 197, 197), (1576, 384)]:
            label = "x".join(map(str, shape))
            x = torch.rand(*shape) * 2 - 1
            nbytes = 2 * 4 * x.numel()
            row(f"softmax_f32/torch_softmax/{label}",
                median_seconds(lambda: torch.softmax(x, -1)), nbytes, "GB/s")
            d = shape[-1]
            w, b = torch.ones(d), torch.zeros(d)
            row(f"layer_norm_f32/torch_layer_norm/{label}",
                median_seconds(lambda: torch.nn.functional.layer_norm(x, (d,), w, b, 1e-6)),
                nbytes, "GB/s")


if __name__ == "__main__":
    main()
