"""Int8 weight-only linear on the GPU, range-dispatched on M, timed under CUDA graphs.

y = (x @ wq.to(bf16)) * scale, x: (M, K) bf16, wq: (K, N) int8, K = N = 4096.

Impls:
  fused_BMxBNxBK  a user Triton kernel (torch.library.triton_op + wrap_triton):
            each program dequantizes its int8 weight tile in registers once for
            BM rows of x, and scales in the epilogue: one kernel that reads the
            16 MiB int8 weight once while M <= BM. Three tile shapes.
  dequant   dequantize the weight to bf16, then cuBLAS (x @ w), then scale. Reads
            16 MiB, writes and reads 32 MiB more, but cuBLAS wins at large M.

For every M, each variant is compiled with Inductor and captured in one CUDA
graph of CALLS back-to-back calls; the graphs of one M are replayed in turns
(shuffled each round), each timed replay preceded by an untimed one of the same
graph and timed with CUDA events (median over ROUNDS rounds). Variants:
  oracle    each impl compiled alone for that M (dynamic=False), the fastest;
  dynamic oracle  each impl compiled alone once with M dynamic, the fastest at
            that M: the dispatch's own cost is dispatched / dynamic oracle;
  single    the best single impl: the one with the lowest geometric mean of
            its per-M times;
  dispatched the range-dispatched op, compiled once with M dynamic, its
            winners chosen by Inductor's autotuning.
The dispatched op is also compiled with mode="reduce-overhead" to check that
Inductor's own CUDA graphs keep it (counters["inductor"]["cudagraph_skips"]).

Usage: python benchmarks/bench_woq_cudagraphs.py [--quick] [--out FILE.json]
"""

import argparse
import functools
import json
import math
import statistics
import sys
from collections.abc import Callable
from typing import Any

import torch
import torch._inductor.config as inductor_config
import triton
import triton.language as tl

# The op itself (bench::woq_linear) and the interleaved timing are the CPU
# benchmark's; this script brings GPU impls for the op.
from bench_range_dispatch import interleaved_rounds, woq_linear
from torch._dynamo.utils import counters
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)
from torch.library import triton_op, wrap_triton


K = N = 4096
SPLIT_POINTS = [16, 64, 256, 512]
RANGE_UPPER_BOUND = 4096


@triton.jit
def _woq_kernel(
    x_ptr,
    w_ptr,
    scale_ptr,
    out_ptr,
    M,
    N: tl.constexpr,
    K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """out[rows, cols] = (x[rows] @ w[:, cols].to(bf16)) * scale[cols]: each
    program reads its int8 weight columns once for BLOCK_M rows of x."""
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows[:, None] < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=row_ok, other=0.0)
        b = tl.load(w_ptr + ks[:, None] * N + cols[None, :])
        acc += tl.dot(a, b.to(tl.bfloat16))
    scale = tl.load(scale_ptr + cols).to(tl.float32)
    out = (acc * scale[None, :]).to(tl.bfloat16)
    tl.store(out_ptr + rows[:, None] * N + cols[None, :], out, mask=row_ok)


@triton_op("bench::woq_fused", mutates_args=())
def woq_fused(
    x: torch.Tensor,
    wq: torch.Tensor,
    scale: torch.Tensor,
    block_m: int,
    block_n: int,
    block_k: int,
    num_stages: int,
) -> torch.Tensor:
    m, k = x.shape
    n = wq.shape[1]
    out = x.new_empty((m, n))
    grid = (n // block_n, triton.cdiv(m, block_m))
    wrap_triton(_woq_kernel)[grid](
        x,
        wq,
        scale,
        out,
        m,
        n,
        k,
        block_m,
        block_n,
        block_k,
        num_warps=4,
        num_stages=num_stages,
    )
    return out


def fused_impl(block_m: int, block_n: int, block_k: int, num_stages: int) -> Callable:
    def impl(x, wq, scale):
        return woq_fused(x, wq, scale, block_m, block_n, block_k, num_stages)

    impl.__name__ = f"fused_{block_m}x{block_n}x{block_k}"
    return impl


def dequant(x, wq, scale):
    return (x @ wq.to(x.dtype)) * scale


# Tile shapes from a sweep on an H100 (fastest at M = 16, 64 and 256).
IMPLS = {
    impl.__name__: impl
    for impl in [
        fused_impl(16, 32, 128, 4),
        fused_impl(64, 32, 256, 3),
        fused_impl(64, 64, 128, 3),
        dequant,
    ]
}


def capture(fn: Callable[[], Any], calls: int) -> torch.cuda.CUDAGraph:
    """fn called CALLS times back to back, captured in one CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    graph.replay()
    torch.cuda.synchronize()
    return graph


def replay_us(
    graphs: dict[str, torch.cuda.CUDAGraph], calls: int, rounds: int
) -> dict[str, float]:
    """GPU time per call of each graph, median over ROUNDS interleaved rounds.

    Each graph is replayed once untimed right before its timed replay: timed, it
    starts from its own steady state, not the cache state the previous graph
    left. (Without that warm replay, a graph that followed the dequantize graph,
    which writes 32 MiB, measured about 3% slower on an H100.)
    """

    def replay_time(graph: torch.cuda.CUDAGraph) -> Callable[[], float]:
        def measure() -> float:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            graph.replay()
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) * 1e3 / calls

        return measure

    samples = interleaved_rounds(
        {name: replay_time(graph) for name, graph in graphs.items()}, rounds
    )
    return {name: statistics.median(times) for name, times in samples.items()}


def reduce_overhead_check(weights, ms: list[int]) -> dict[str, Any]:
    """The dispatched op under Inductor's CUDA graph trees: skips, and values."""
    counters.clear()
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: woq_linear(x, *weights), mode="reduce-overhead")
    worst = 0.0
    for m in ms:
        x = torch.randn(m, K, device="cuda", dtype=torch.bfloat16)
        torch._dynamo.mark_dynamic(x, 0)
        for _ in range(3):  # warm-up, record, replay
            y = compiled(x).clone()
        ref = dequant(x, *weights)
        worst = max(
            worst,
            ((y.float() - ref.float()).abs().max() / ref.float().abs().max()).item(),
        )
    return {
        "cudagraph_skips": counters["inductor"]["cudagraph_skips"],
        "frames": counters["stats"]["unique_graphs"],
        "max_relative_error": worst,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer M, replays")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_woq_cudagraphs: needs a CUDA device", file=sys.stderr)
        return 2
    ms = (
        [2, 16, 64, 256, 4096]
        if args.quick
        else [2, 4, 8, 16, 32, 64, 65, 128, 256, 512, 1024, 2048, 4096]
    )
    calls, rounds = (10, 5) if args.quick else (20, 75)
    torch.manual_seed(0)
    wq = torch.randint(-127, 127, (K, N), device="cuda", dtype=torch.int8)
    scale = torch.rand(N, device="cuda", dtype=torch.bfloat16) * 0.01
    weights = (wq, scale)
    inputs = {m: torch.randn(m, K, device="cuda", dtype=torch.bfloat16) for m in ms}

    register_custom_op_autotuning(
        woq_linear,
        configs=[CustomOpConfig(impl) for impl in IMPLS.values()],
        dispatch_on={
            "tensor_name": "x",
            "dim": 0,
            "range_upper_bound": RANGE_UPPER_BOUND,
        },
        split_points=SPLIT_POINTS,
        # Autotuning times the choices as the model runs them: under CUDA graphs.
        benchmark_with_cudagraphs=True,
    )
    result: dict[str, Any] = {
        "device_name": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "k": K,
        "n": N,
        "split_points": SPLIT_POINTS,
        "calls_per_graph": calls,
        "rounds": rounds,
    }
    print(f"device {result['device_name']}, torch {torch.__version__}", flush=True)

    with inductor_config.patch(force_disable_caches=True):
        # The dispatched op, compiled once for all M; its graphs are captured
        # first, as compiling the singles resets Dynamo.
        dispatched = torch.compile(lambda x: woq_linear(x, *weights))
        # Each impl alone, also compiled once with M dynamic: what the dispatched
        # op can at best be, as a dynamic M costs some kernels their
        # specialization on M's value (e.g. M % 16 == 0).
        dynamic_fns = {"dispatched": dispatched}
        for name, impl in IMPLS.items():
            dynamic_fns[f"{name}_dynamic"] = torch.compile(
                lambda x, impl=impl: impl(x, *weights)
            )
        dynamic_graphs: dict[int, dict[str, torch.cuda.CUDAGraph]] = {}
        # Only M is dynamic (marked): the impls' lambdas share one code object,
        # and automatic dynamic would turn their tile sizes into symbols.
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            for m in reversed(ms):
                x = inputs[m]
                torch._dynamo.mark_dynamic(x, 0)
                dynamic_graphs[m] = {
                    name: capture(functools.partial(fn, x), calls)
                    for name, fn in dynamic_fns.items()
                }
        rows = []
        for m in ms:
            graphs = dynamic_graphs.pop(m)
            for name, impl in IMPLS.items():
                torch._dynamo.reset()
                alone = torch.compile(
                    lambda x, impl=impl: impl(x, *weights), dynamic=False
                )
                graphs[name] = capture(functools.partial(alone, inputs[m]), calls)
            times = replay_us(graphs, calls, rounds)
            row: dict[str, Any] = {"m": m}
            row.update({f"{name}_us": times[name] for name in IMPLS})
            row["oracle_us"] = min(times[name] for name in IMPLS)
            row["dispatched_us"] = times["dispatched"]
            row["dynamic_oracle_us"] = min(times[f"{name}_dynamic"] for name in IMPLS)
            rows.append(row)
            del graphs
    geomean = {
        name: math.exp(statistics.mean(math.log(r[f"{name}_us"]) for r in rows))
        for name in IMPLS
    }
    best_single = min(geomean, key=geomean.get)
    for row in rows:
        row["dispatched_over_oracle"] = row["dispatched_us"] / row["oracle_us"]
        row["dispatched_over_dynamic_oracle"] = (
            row["dispatched_us"] / row["dynamic_oracle_us"]
        )
        row["best_single_over_dispatched"] = (
            row[f"{best_single}_us"] / row["dispatched_us"]
        )
        print(
            "  "
            + json.dumps(
                {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            ),
            flush=True,
        )
    result.update(rows=rows, best_single=best_single, geomean_us=geomean)
    result["reduce_overhead"] = reduce_overhead_check(weights, ms)
    print(f"  best single: {best_single}; reduce-overhead: {result['reduce_overhead']}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
