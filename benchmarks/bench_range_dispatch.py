"""Benchmarks of range-based custom-op dispatch (see BENCHMARKS.md).

Sections:
  compile   compile work for R = 2, 3, 7 ranges: ir.SubgraphBuffer constructions,
            inline_subgraph_to_ir_nodes calls, benchmark rounds and choices
            benchmarked, compile wall time; dynamic and static dim. Runs on patched
            and unpatched torch alike (run it on both, side by side).
  overhead  host overhead per call at the deepest branch: the range-dispatched op
            vs the same op compiled with one winner for all ranges (no dispatch),
            G = 2, 4, 8, 16 groups, in interleaved rounds (median of the per-round
            differences); and a user-level balanced torch.cond tree vs a linear
            chain of range predicates (what upstream builds).
  e2e       int8 weight-only linear y = (x @ wq.to(dtype)) * scale dispatched on M:
            each impl compiled alone (dynamic=False) per M, their minimum (the
            oracle), the range-dispatched op (one compile, M marked dynamic) and
            the best single impl overall.
  skinny    the same for x @ w with a long K and a small N: the library matmul vs
            split-K (8 or 32 batched partial products, summed).

Usage: python benchmarks/bench_range_dispatch.py [--quick] [--device cpu|cuda]
           [--sections compile,overhead,e2e,skinny] [--out FILE.json]
Prints one table per section and writes every figure to --out (JSON).
"""

import argparse
import atexit
import contextlib
import functools
import importlib.util
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import torch
import torch._inductor.config as inductor_config
import torch._inductor.kernel.custom_op as custom_op
from torch._dynamo.utils import counters
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)


PATCHED = hasattr(custom_op, "_build_torch_cond_dispatch")


# ---------------------------------------------------------------- ops


@torch.library.custom_op("bench::scale_act", mutates_args=())
def scale_act(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.relu(x * weight)


@scale_act.register_fake
def _(x, weight):
    return torch.empty_like(x)


def relu_impl(x, weight):
    return torch.relu(x * weight)


def heavy_impl(x, weight):
    # ~10x the work of relu_impl: loses every range, deterministically.
    y = x * weight
    for _ in range(10):
        y = torch.sin(y) * 1.0001
    return torch.relu(y)


def offset_impls(count: int) -> list[Callable]:
    def make(i: int) -> Callable:
        def impl(x, weight):
            return x * weight + i

        impl.__name__ = f"offset_{i}"
        return impl

    return [make(i) for i in range(count)]


@torch.library.custom_op("bench::woq_linear", mutates_args=())
def woq_linear(x: torch.Tensor, wq: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (x @ wq.to(x.dtype)) * scale


@woq_linear.register_fake
def _(x, wq, scale):
    return x.new_empty(x.shape[0], wq.shape[1])


def woq_gemv(x, wq, scale):
    """Dequantize inside one multiply-reduce kernel: no dequantized weight copy."""
    prod = x.unsqueeze(-1).float() * wq.unsqueeze(0).float()
    return (prod.sum(1) * scale.float()).to(x.dtype)


def woq_mm(x, wq, scale):
    """Dequantize, then a library matmul."""
    return (x @ wq.to(x.dtype)) * scale


WOQ_IMPLS = [woq_gemv, woq_mm]


# ---------------------------------------------------------------- timing


@functools.cache
def _source_dir() -> str:
    path = tempfile.mkdtemp(prefix="bench_range_dispatch_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def function_of_its_own(name: str, params: str, body: str, **names: Any) -> Callable:
    """``def name(params): return body`` in a source file of its own, with names
    as its globals. Dynamo keeps one cache (and one recompile limit) per code
    object and may merge code objects that differ only in name, so compiles that
    share one would evict each other or fall back to eager; and it wraps
    functions without a source file in a shared wrapper."""
    path = os.path.join(_source_dir(), f"{name}.py")
    with open(path, "w") as f:
        f.write(f"def {name}({params}):\n    return {body}\n")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vars(module).update(names)
    return getattr(module, name)


def median_us(
    fn: Callable[[], Any], device: str, quick: bool, host: bool = False
) -> float:
    """Median latency of fn() in microseconds: GPU time (triton do_bench) on CUDA,
    else, or with host=True, wall time per call over batches of back-to-back calls
    (synchronized once per batch), which is what host-side overhead costs."""
    if device == "cuda" and not host:
        from triton.testing import do_bench

        return (
            do_bench(fn, warmup=25, rep=100 if quick else 300, return_mode="median")
            * 1e3
        )
    for _ in range(20):
        fn()
    batch, rounds = 50, (21 if quick else 101)
    samples = []
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(rounds):
        sync()
        start = time.perf_counter_ns()
        for _ in range(batch):
            fn()
        sync()
        samples.append((time.perf_counter_ns() - start) / batch / 1e3)
    return statistics.median(samples)


@contextlib.contextmanager
def count_calls(owner: Any, attr: str) -> Iterator[list[int]]:
    calls: list[int] = []
    original = getattr(owner, attr)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    with mock.patch.object(owner, attr, counting):
        yield calls


def forced_regex(split_points: list[int], winners: list[str]) -> str:
    starts = [1] + [p + 1 for p in split_points]
    ends = [str(p) for p in split_points] + ["inf"]
    parts = [
        rf"_autotuned_range_{s}_{e}_{w}(_\S*)?$"
        for s, e, w in zip(starts, ends, winners)
    ]
    return "|".join(parts) + "|^(?!.*_autotuned_)"


# ---------------------------------------------------------------- compile work


@contextlib.contextmanager
def count_benchmarked_choices() -> Iterator[list[int]]:
    """Yields a list that gets the number of choices of every benchmark round."""
    from torch._inductor.select_algorithm import AlgorithmSelectorCache

    rounds: list[int] = []
    original = AlgorithmSelectorCache.benchmark

    def counting(self, choices, *args, **kwargs):
        rounds.append(len(choices))
        return original(self, choices, *args, **kwargs)

    with mock.patch.object(AlgorithmSelectorCache, "benchmark", counting):
        yield rounds


def compile_work(device: str, quick: bool) -> list[dict[str, Any]]:
    from torch._inductor import ir
    from torch._inductor.codegen import subgraph

    rows = []
    # split_points must be non-empty, so the fewest ranges is 2.
    for num_ranges in [2] if quick else [2, 3, 7]:
        split_points = [64 * 2**i for i in range(num_ranges - 1)]
        for dynamic in [True, False]:
            register_custom_op_autotuning(
                scale_act,
                configs=[CustomOpConfig(relu_impl), CustomOpConfig(heavy_impl)],
                dispatch_on={"tensor_name": "x", "dim": 1},
                split_points=split_points,
            )
            torch._dynamo.reset()
            counters.clear()
            x = torch.randn(8, 96, 256, device=device)
            weight = torch.randn(256, device=device)
            row: dict[str, Any] = {
                "ranges": num_ranges,
                "dynamic": dynamic,
                "patched": PATCHED,
            }
            try:
                with (
                    inductor_config.patch(force_disable_caches=True),
                    count_calls(ir.SubgraphBuffer, "__init__") as buffers,
                    count_calls(subgraph, "inline_subgraph_to_ir_nodes") as inlines,
                    count_benchmarked_choices() as choices,
                ):
                    start = time.perf_counter()
                    torch.compile(lambda x, w: scale_act(x, w), dynamic=dynamic)(
                        x, weight
                    )
                    row["compile_s"] = round(time.perf_counter() - start, 2)
                row.update(
                    subgraph_buffers=len(buffers),
                    inlines=len(inlines),
                    benchmark_rounds=len(choices),
                    choices_benchmarked=sum(choices),
                )
            except Exception as e:  # upstream fails in some of these cases
                row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
            rows.append(row)
            print(f"  compile {row}", flush=True)
    return rows


# ---------------------------------------------------------------- dispatch overhead


def cond_tree(impls: list[Callable], bounds: list[int]) -> Callable:
    """Balanced torch.cond tree over the groups (what the series builds)."""

    def build(lo: int, hi: int) -> Callable:
        if lo == hi:
            return impls[lo]
        mid = (lo + hi) // 2
        left, right = build(lo, mid), build(mid + 1, hi)
        return lambda x, w: torch.cond(x.shape[1] <= bounds[mid], left, right, (x, w))

    return build(0, len(impls) - 1)


def cond_chain(impls: list[Callable], bounds: list[int]) -> Callable:
    """Linear chain of range predicates (what upstream 2.11.0 builds)."""
    starts = [1] + [b + 1 for b in bounds]

    def build(i: int) -> Callable:
        if i == len(impls) - 1:
            return impls[i]
        rest = build(i + 1)
        lo, hi = starts[i], bounds[i]
        return lambda x, w: torch.cond(
            (x.shape[1] >= lo) & (x.shape[1] <= hi), impls[i], rest, (x, w)
        )

    return build(0)


def interleaved_rounds(
    measure: dict[str, Callable[[], float]], rounds: int, seed: int = 0
) -> dict[str, list[float]]:
    """One sample of each ``measure[name]()`` per round, the names taking turns in
    a new random order every round, so that load changes, clock drift and the
    position in the round hit them alike."""
    order = random.Random(seed)
    names = list(measure)
    samples: dict[str, list[float]] = {name: [] for name in measure}
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            samples[name].append(measure[name]())
    return samples


def interleaved_us(
    calls: dict[str, Callable[[], Any]], rounds: int, batch: int
) -> dict[str, list[float]]:
    """Per-call wall time (us) of each call, one sample per round and call, in
    interleaved rounds; compare them by the per-round differences."""
    for call in calls.values():
        for _ in range(20):
            call()

    def wall_us(call: Callable[[], Any]) -> Callable[[], float]:
        def measure() -> float:
            start = time.perf_counter_ns()
            for _ in range(batch):
                call()
            return (time.perf_counter_ns() - start) / batch / 1e3

        return measure

    return interleaved_rounds(
        {name: wall_us(call) for name, call in calls.items()}, rounds
    )


def median_difference(a: list[float], b: list[float]) -> float:
    return statistics.median(x - y for x, y in zip(a, b))


def dispatch_overhead(device: str, quick: bool) -> list[dict[str, Any]]:
    """Host cost of the dispatch at the size that takes the deepest branch: the
    range-dispatched op against the same op compiled with one winner for every
    range (no dispatch), timed side by side in interleaved rounds, at two levels:

    - wrapper: the generated ``call`` alone (what the dispatch changes);
    - compiled: the torch.compile'd function (Dynamo guards, AOT runtime, call).

    A second single-winner compile (the twin) gives each level's noise floor.
    On the CPU, one thread: the dispatch is host code, and OpenMP's fork-join on
    tiny kernels would only add noise."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        return [
            _dispatch_overhead(groups, device, quick)
            for groups in ([2] if quick else [2, 4, 8, 16])
        ]
    finally:
        torch.set_num_threads(threads)


def _compile_with_winners(
    name: str, winners: list[str], bounds: list[int], example: tuple[Any, ...]
) -> tuple[Callable, Callable]:
    """(compiled function, its generated wrapper's call) with forced winners."""
    from torch._inductor.codecache import PyCodeCache
    from torch._inductor.graph import GraphLowering

    compiled = torch.compile(
        function_of_its_own(name, "x, w", "OP(x, w)", OP=scale_act), dynamic=True
    )
    codes: list[str] = []
    # Not run_and_get_code: it resets Dynamo, which drops the other compiles.
    with (
        mock.patch.object(GraphLowering, "save_output_code", codes.append),
        inductor_config.patch(
            {
                "force_disable_caches": True,
                "test_configs.autotune_choice_name_regex": forced_regex(
                    bounds, winners
                ),
            }
        ),
    ):
        compiled(*example)
    return compiled, PyCodeCache.load(codes[-1]).call


def _dispatch_overhead(groups: int, device: str, quick: bool) -> dict[str, Any]:
    rounds, batch = (21, 100) if quick else (301, 400)
    weight = torch.randn(4, device=device)
    impls = offset_impls(groups)
    bounds = [8 * (i + 1) for i in range(groups - 1)]
    last = torch.randn(2, 8 * groups + 3, 4, device=device)  # deepest chain branch
    row: dict[str, Any] = {"groups": groups, "device": device, "rounds": rounds}
    calls: dict[str, Callable[[], Any]] = {}
    for name, build in [("tree", cond_tree), ("chain", cond_chain)]:
        user = torch.compile(
            function_of_its_own(
                f"user_{name}_{groups}", "x, w", "FN(x, w)", FN=build(impls, bounds)
            ),
            dynamic=True,
        )
        calls[f"user_{name}"] = functools.partial(user, last, weight)
    if PATCHED:
        register_custom_op_autotuning(
            scale_act,
            configs=[CustomOpConfig(impl) for impl in impls],
            dispatch_on={"tensor_name": "x", "dim": 1},
            split_points=bounds,
        )
        names = [impl.__name__ for impl in impls]
        wrapper_args = [2, last.size(1), 4, last, weight]
        for name, winners in [
            ("dispatched", names),
            ("single", [names[-1]] * groups),
            ("twin", [names[-1]] * groups),
        ]:
            compiled, wrapper = _compile_with_winners(
                f"{name}_{groups}", winners, bounds, (last, weight)
            )
            calls[f"{name}_compiled"] = functools.partial(compiled, last, weight)
            calls[f"{name}_wrapper"] = lambda w=wrapper: w(list(wrapper_args))
    for call in calls.values():
        call()
    if device == "cuda":
        torch.cuda.synchronize()
    samples = interleaved_us(calls, rounds, batch)
    if device == "cuda":
        torch.cuda.synchronize()
    row.update({f"{name}_us": statistics.median(t) for name, t in samples.items()})
    if PATCHED:
        for level in ["wrapper", "compiled"]:
            single = samples[f"single_{level}"]
            row[f"overhead_{level}_us"] = median_difference(
                samples[f"dispatched_{level}"], single
            )
            row[f"noise_{level}_us"] = median_difference(
                samples[f"twin_{level}"], single
            )
    print(
        f"  overhead {json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()})}",
        flush=True,
    )
    return row


# ---------------------------------------------------------------- end to end


@torch.library.custom_op("bench::skinny_linear", mutates_args=())
def skinny_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w


@skinny_linear.register_fake
def _(x, w):
    return x.new_empty(x.shape[0], w.shape[1])


def skinny_mm(x, w):
    return x @ w


def skinny_splitk(x, w, k_splits=8):
    """Split the long K dim into k_splits batched partial products, then sum them:
    more parallel work when M and N are too small to fill the machine."""
    m, k = x.shape
    parts = torch.bmm(
        x.view(m, k_splits, k // k_splits).transpose(0, 1),
        w.view(k_splits, k // k_splits, w.shape[1]),
    )
    return parts.sum(0)


@dataclass
class Workload:
    """An op dispatched on x.size(0) = M, its impls and how to build its inputs."""

    name: str
    op: Any
    configs: list[CustomOpConfig]
    weights: tuple[torch.Tensor, ...]
    k: int
    n: int
    dtype: torch.dtype
    ms: list[int]
    split_points: list[int]
    reference: Callable[..., torch.Tensor]
    max_m: dict[str, int]  # impls too slow to time past this M

    def impls(self) -> dict[str, Callable]:
        return {
            "_".join([cfg.decomposition.__name__, *map(str, cfg.params.values())]): (
                functools.partial(cfg.decomposition, **cfg.params)
            )
            for cfg in self.configs
        }


def woq_workload(device: str, quick: bool) -> Workload:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    k = n = 4096 if device == "cuda" else 1024
    max_m = 16384 if device == "cuda" else 1024
    ms = [2**i for i in range(int(math.log2(max_m)) + 1)]
    if quick:
        ms, k, n = [1, 16], 256, 256
    torch.manual_seed(0)
    wq = torch.randint(-127, 127, (k, n), device=device, dtype=torch.int8)
    scale = torch.rand(n, device=device, dtype=dtype) * 0.01
    return Workload(
        name="woq_linear",
        op=woq_linear,
        configs=[CustomOpConfig(impl) for impl in WOQ_IMPLS],
        weights=(wq, scale),
        k=k,
        n=n,
        dtype=dtype,
        ms=ms,
        split_points=[p for p in [1, 4, 16, 64, 256, 1024] if p < ms[-1]],
        reference=lambda x, wq, scale: (x.float() @ wq.float()) * scale.float(),
        # gemv re-reads the weight for every row of x: hopeless past a few hundred.
        max_m={"woq_gemv": 1024 if device == "cuda" else 256},
    )


def skinny_workload(device: str, quick: bool) -> Workload:
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    k, n = (16384, 256) if device == "cuda" else (8192, 64)
    ms = [2**i for i in range(1, 12 if device == "cuda" else 10)]
    if quick:
        ms, k = [2, 64], 2048
    torch.manual_seed(0)
    w = torch.randn(k, n, device=device, dtype=dtype) / math.sqrt(k)
    return Workload(
        name="skinny_linear",
        op=skinny_linear,
        configs=[
            CustomOpConfig(skinny_mm),
            CustomOpConfig(skinny_splitk, k_splits=8),
            CustomOpConfig(skinny_splitk, k_splits=32),
        ],
        weights=(w,),
        k=k,
        n=n,
        dtype=dtype,
        ms=ms,
        split_points=[p for p in [4, 16, 64, 256] if p < ms[-1]],
        reference=lambda x, w: x.float() @ w.float(),
        max_m={},
    )


WORKLOADS = {"woq_linear": woq_workload, "skinny_linear": skinny_workload}


def e2e(workload: Workload, device: str, quick: bool) -> dict[str, Any]:
    ms, weights = workload.ms, workload.weights
    register_custom_op_autotuning(
        workload.op,
        configs=workload.configs,
        dispatch_on={"tensor_name": "x", "dim": 0, "range_upper_bound": ms[-1]},
        split_points=workload.split_points,
    )
    inputs = {
        m: torch.randn(m, workload.k, device=device, dtype=workload.dtype) for m in ms
    }
    impls = workload.impls()
    compiled_count = iter(range(1 << 30))

    def static_compile(impl: Callable) -> Callable:
        single = function_of_its_own(
            f"single_{next(compiled_count)}",
            "x",
            "IMPL(x, *WEIGHTS)",
            IMPL=impl,
            WEIGHTS=weights,
        )
        return torch.compile(single, dynamic=False)

    single: dict[str, dict[int, float]] = {name: {} for name in impls}
    dispatched: dict[int, float] = {}
    rounds = 3 if quick else 5
    with inductor_config.patch(force_disable_caches=True):
        # As in a model: only the token dim M is dynamic; the weights and K, N are
        # static (Dynamo keeps parameters static by default). One compile.
        dispatched_fn = torch.compile(lambda x: workload.op(x, *weights))
        first = inputs[ms[-1]].clone()
        torch._dynamo.mark_dynamic(first, 0)
        start = time.perf_counter()
        dispatched_fn(first)
        compile_s = time.perf_counter() - start
        for m in ms:
            x = inputs[m]
            torch.testing.assert_close(
                dispatched_fn(x).float(),
                workload.reference(x, *weights),
                atol=0.5,
                rtol=5e-2,
            )
            variants = {"dispatched": dispatched_fn}
            for name, impl in impls.items():
                if m <= workload.max_m.get(name, m):
                    variants[name] = static_compile(impl)
                    variants[name](x)
            # Side by side: interleaved rounds, median per variant.
            samples: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, fn in variants.items():
                    samples[name].append(
                        median_us(lambda fn=fn, x=x: fn(x), device, True)
                    )
            for name, times in samples.items():
                target = dispatched if name == "dispatched" else single[name]
                target[m] = statistics.median(times)

    # Best single impl overall: lowest geometric mean over the Ms it ran at all of.
    def geomean(times: dict[int, float]) -> float:
        if len(times) < len(ms):
            return math.inf
        return math.exp(sum(math.log(times[m]) for m in ms) / len(ms))

    best_single = min(single, key=lambda name: geomean(single[name]))
    rows = []
    for m in ms:
        oracle = min(t[m] for t in single.values() if m in t)
        row = {
            "M": m,
            **{f"{name}_us": single[name].get(m) for name in single},
            "oracle_us": oracle,
            "dispatched_us": dispatched[m],
            "dispatched_over_oracle": dispatched[m] / oracle,
            "best_single_over_dispatched": single[best_single][m] / dispatched[m],
        }
        rows.append(row)
        rounded = {
            k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()
        }
        print(f"  e2e {workload.name} {json.dumps(rounded)}", flush=True)
    return {
        "workload": workload.name,
        "device": device,
        "dtype": str(workload.dtype),
        "K": workload.k,
        "N": workload.n,
        "split_points": workload.split_points,
        "impls": list(impls),
        "best_single": best_single,
        "dispatched_compile_s": compile_s,
        "rows": rows,
    }


def write_report(path: str | None, result: dict[str, Any]) -> None:
    """Write every figure of a run to ``path`` (JSON), when one was given."""
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI smoke: the smallest case of each section, few rounds",
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--sections", default="compile,overhead,e2e")
    parser.add_argument("--out", help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    sections = args.sections.split(",")
    unknown = set(sections) - {"compile", "overhead", "e2e", "skinny"}
    if unknown:
        parser.error(
            f"unknown sections {sorted(unknown)}; "
            "choose from compile, overhead, e2e, skinny"
        )
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    result: dict[str, Any] = {
        "device_name": name,
        "torch": torch.__version__,
        "patched": PATCHED,
        "quick": args.quick,
    }
    print(f"device {name}, torch {torch.__version__}, patched={PATCHED}", flush=True)
    if "compile" in sections:
        result["compile"] = compile_work(args.device, args.quick)
    if "overhead" in sections:
        result["overhead"] = dispatch_overhead(args.device, args.quick)
    for section, make_workload in [("e2e", woq_workload), ("skinny", skinny_workload)]:
        if section not in sections:
            continue
        if not PATCHED:
            print(f"  {section}: skipped, needs the patched torch")
            continue
        workload = make_workload(args.device, args.quick)
        result[section] = e2e(workload, args.device, args.quick)
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
