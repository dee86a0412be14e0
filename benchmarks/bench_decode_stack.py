"""A decode-style stack on the GPU, each impl inline against the range dispatch
(see BENCHMARKS.md, section 5).

LAYERS layers of: rms_norm -> int8 weight-only linear (H x H, weight and scale as
module buffers) -> silu -> residual add, x: (M, H) bf16, M dynamic, compiled with
mode="reduce-overhead". The linear is, per variant:
  mm          dequantize + cuBLAS mm, written inline in the module;
  reduction   a broadcast multiply + sum that Inductor fuses into one reduction
              (fewer kernels, more GPU work), written inline;
  dispatched  the custom op decode::woq_linear, range-dispatched on M (split points
              4 / 16 / 64) with both impls, winners by Inductor's own benchmarks
              with every option left at its default;
  forced      decode::woq_linear_forced, dispatched with two winners for sure
              (the reduction serves M <= 4 only, mm the rest), compared with the
              winner of each M inline.
Every variant is compiled COMPILES times (3), each in a fresh Inductor cache, so
no compile reuses another's timings: two compiles of identical code differ by
the configs their kernels' autotuning picks (the reduction stack's time varied
by a quarter between compiles here), noise that the dispatch does not cause.
A variant's time is the median over its compiles, and the ratios compare those
medians; each variant's spread (slowest / fastest compile) is reported beside
them.
For every M, each compile's forward is timed by replaying its CUDA graph (what
mode="reduce-overhead" runs), all compiles in turns (a random order each round;
the much slower reduction stacks apart), 25 rounds of 20 calls, median; its
CUDA kernels per forward are counted with torch.profiler. Each compile's time
is the first call's wall time, split into phases (wall time inside each) to
say where the time goes.

Usage: python benchmarks/bench_decode_stack.py [--quick] [--compiles N] [--rounds N]
                                              [--ms 64,128] [--out FILE.json]
"""

import argparse
import contextlib
import functools
import json
import logging
import random
import statistics
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import torch
import torch._inductor.config as inductor_config
import torch._inductor.kernel.custom_op as custom_op
import torch.nn.functional as F
from torch._dynamo.utils import counters
from torch._inductor.codegen.subgraph import SubgraphChoiceCaller
from torch._inductor.graph import GraphLowering
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)
from torch._inductor.select_algorithm import AlgorithmSelectorCache
from torch._inductor.utils import fresh_cache


H = 4096
SPLIT_POINTS = [4, 16, 64]
DECISIONS_LOG = "torch._inductor.kernel.custom_op.__autotuning"


def woq_linear_op(name: str) -> Any:
    """A custom op ``decode::<name>`` computing dequantize + mm: the op a stack's
    linears call (each dispatched variant needs an op of its own to register)."""

    def woq_linear(
        x: torch.Tensor, wq: torch.Tensor, scale: torch.Tensor
    ) -> torch.Tensor:
        return (x @ wq.to(x.dtype)) * scale

    op = torch.library.custom_op(f"decode::{name}", mutates_args=())(woq_linear)
    op.register_fake(lambda x, wq, scale: x.new_empty(x.shape[0], wq.shape[1]))
    return op


woq_linear = woq_linear_op("woq_linear")
woq_linear_forced = woq_linear_op("woq_linear_forced")


def mm(x, wq, scale):
    return (x @ wq.to(x.dtype)) * scale


def reduction(x, wq, scale):
    prod = x.unsqueeze(-1).float() * wq.unsqueeze(0).float()
    return (prod.sum(1) * scale.float()).to(x.dtype)


LINEARS: dict[str, Callable[..., torch.Tensor]] = {
    "mm": mm,
    "reduction": reduction,
    "dispatched": woq_linear,
    "forced": woq_linear_forced,
}


class Layer(torch.nn.Module):
    def __init__(self, linear: str, generator: torch.Generator) -> None:
        super().__init__()
        self.linear = LINEARS[linear]
        kw = {"device": "cuda", "generator": generator}
        self.register_buffer("norm", torch.rand(H, **kw) + 0.5)
        wq = torch.randint(-127, 127, (H, H), dtype=torch.int8, **kw)
        self.register_buffer("wq", wq)
        self.register_buffer("scale", torch.rand(H, **kw).to(torch.bfloat16) / H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.rms_norm(x, (H,), self.norm.to(x.dtype), 1e-6)
        return x + F.silu(self.linear(h, self.wq, self.scale))


class Stack(torch.nn.Module):
    def __init__(self, linear: str, layers: int) -> None:
        super().__init__()
        generator = torch.Generator(device="cuda").manual_seed(0)
        self.layers = torch.nn.ModuleList(
            Layer(linear, generator) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def stack_compiled_apart(linear: str, layers: int, tag: str) -> Stack:
    """A Stack whose forward is a code object of its own: Dynamo compiles it
    anew instead of reusing another Stack's graph (modules are inlined, so the
    graph of any Stack with the same structure would serve it)."""
    model = Stack(linear, layers)
    code = Stack.forward.__code__.replace(co_name=f"forward_{tag}")
    forward = types.FunctionType(code, Stack.forward.__globals__, f"forward_{tag}")
    model.forward = types.MethodType(forward, model)
    return model


def register() -> None:
    register_custom_op_autotuning(
        woq_linear,
        configs=[CustomOpConfig(reduction), CustomOpConfig(mm)],
        dispatch_on={"tensor_name": "x", "dim": 0},
        split_points=SPLIT_POINTS,
    )
    # Two winners for sure: the reduction serves M <= 4 only, mm the rest.
    register_custom_op_autotuning(
        woq_linear_forced,
        configs=[
            CustomOpConfig(reduction, dispatch_sizes=(1, 4)),
            CustomOpConfig(mm, dispatch_sizes=(5, float("inf"))),
        ],
        dispatch_on={"tensor_name": "x", "dim": 0},
        split_points=SPLIT_POINTS,
    )


# Without the op's own implementation as a choice (2.11 has no include_fallback):
# one choice per range for the forced op, nothing timed.
NO_FALLBACK = {"test_configs.autotune_choice_name_regex": "^(?!.*_fallback)"}


def compile_variant(linear: str, index: int, layers: int, first_m: int = 8) -> dict:
    """Compile the stack with ``linear`` once more (in a fresh Inductor cache, a
    code object of its own) and call it at first_m."""
    model = stack_compiled_apart(linear, layers, f"{linear}_{index}")
    decisions: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if ": winner " in record.getMessage():
                decisions.append(record.getMessage())

    logger = logging.getLogger(DECISIONS_LOG)
    handler = Collect(level=logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    f = torch.compile(model, mode="reduce-overhead")
    x = torch.randn(first_m, H, device="cuda", dtype=torch.bfloat16)
    torch._dynamo.mark_dynamic(x, 0)
    frames = counters["frames"]["ok"]
    options = NO_FALLBACK if linear == "forced" else {}
    with fresh_cache(), inductor_config.patch(options), phase_times() as phases:
        torch.cuda.synchronize()
        start = time.perf_counter()
        f(x)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    logger.removeHandler(handler)
    return {
        "fn": f,
        "compile_s": seconds,
        "frames": counters["frames"]["ok"] - frames,
        "decisions": [d.split("_autotuned_")[-1] for d in decisions],
        "phases_s": phases,
    }


# Where a compile spends its time: wall seconds inside each (outermost calls only).
PHASES = {
    "range lowering (all of it)": (custom_op, "_range_based_lowering_fn"),
    "trace choices": (custom_op, "_generate_custom_op_choices"),
    "pre-vet decompositions": (custom_op, "_decompositions_tracing_once"),
    "compile benchmark modules": (SubgraphChoiceCaller, "precompile"),
    "time choices (rounds)": (AlgorithmSelectorCache, "benchmark_in_rounds"),
    "vet branches": (custom_op, "_vet_branches"),
    "Inductor codegen (graph)": (GraphLowering, "codegen"),
    "compile to module (graph)": (GraphLowering, "compile_to_module"),
}


@contextlib.contextmanager
def phase_times() -> Iterator[dict[str, float]]:
    times = dict.fromkeys(PHASES, 0.0)
    depth = dict.fromkeys(PHASES, 0)

    def timed(label: str, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            depth[label] += 1
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[label] -= 1
                if depth[label] == 0:
                    times[label] += time.perf_counter() - start

        return wrapper

    with contextlib.ExitStack() as stack:
        for label, (owner, attr) in PHASES.items():
            original = owner.__dict__.get(attr)
            if original is None:
                continue
            if isinstance(original, classmethod):
                patched: Any = classmethod(timed(label, original.__func__))
            else:
                patched = timed(label, original)
            stack.enter_context(mock.patch.object(owner, attr, patched))
        yield times


def replay_us(
    fns: dict[str, Callable],
    x: torch.Tensor,
    rounds: int,
    calls: int,
    host_us: dict[str, float] | None = None,
) -> dict[str, float]:
    """Median forward time of each fn at x, in us: the fns in turns, ``calls``
    calls per timed block, ``rounds`` blocks each. With ``host_us``, also the
    median host time per call (launching a block, before waiting for it): a
    block is GPU-bound where it is well below the GPU time."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    host: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm up: record the CUDA graph of this size
        for _ in range(3):
            fn(x)
    order = list(fns.items())
    for _ in range(rounds):
        random.shuffle(order)  # no variant always runs after the same one
        for name, fn in order:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            fn(x)
            start.record()
            launch = time.perf_counter()
            for _ in range(calls):
                fn(x)
            host[name].append((time.perf_counter() - launch) * 1e6 / calls)
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end) * 1000 / calls)
    if host_us is not None:
        host_us.update({name: statistics.median(h) for name, h in host.items()})
    return {name: statistics.median(s) for name, s in samples.items()}


def cuda_kernels(profile: torch.profiler.profile) -> list[Any]:
    """The CUDA kernels a profile recorded (no memcpy or memset), by start time."""
    return sorted(
        (
            e
            for e in profile.events()
            if e.device_type == torch.autograd.DeviceType.CUDA
            and not e.name.startswith(("Memcpy", "Memset"))
        ),
        key=lambda e: e.time_range.start,
    )


def kernels_per_forward(fn: Callable, x: torch.Tensor) -> list[tuple[str, float]]:
    """The CUDA kernels of one forward, in launch order: (name, device us)."""
    fn(x)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        fn(x)
        torch.cuda.synchronize()
    return [(e.name, e.time_range.elapsed_us()) for e in cuda_kernels(p)]


def by_kind(values: dict[str, float], kind: str) -> list[float]:
    """The values of every compile of one kind of variant ("mm_1", "mm_2", ...)."""
    return [v for name, v in values.items() if name.rsplit("_", 1)[0] == kind]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument(
        "--compiles", type=int, default=3, help="compiles of every variant"
    )
    parser.add_argument("--rounds", type=int, help="timed blocks per variant and M")
    parser.add_argument("--ms", help="comma-separated M values to time")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_decode_stack.py needs a CUDA GPU", file=sys.stderr)
        return 2
    ms = [1, 2, 4, 64, 128] if args.quick else [1, 2, 4, 8, 16, 32, 64, 128, 256]
    rounds, calls = (5, 10) if args.quick else (25, 20)
    if args.ms:
        ms = [int(m) for m in args.ms.split(",")]
    rounds = args.rounds or rounds
    device = torch.cuda.get_device_name()
    print(f"{device}, torch {torch.__version__}, {args.layers} layers, H = {H}")
    register()
    random.seed(0)
    kinds = ("mm", "reduction", "dispatched", "forced")
    variants: dict[str, dict] = {}
    for i in range(1, args.compiles + 1):
        for kind in kinds:
            variants[f"{kind}_{i}"] = compile_variant(kind, i, args.layers)
    for name, v in variants.items():
        phases = ", ".join(f"{k} {t:.2f}" for k, t in v["phases_s"].items() if t)
        print(
            f"compile {name}: {v['compile_s']:.1f} s, {v['frames']} frame(s); {phases}"
        )
        for line in v["decisions"]:
            print(f"    {line}")

    fns = {name: v["fn"] for name, v in variants.items()}
    table = []
    reference = Stack("mm", args.layers)
    for m in ms:
        frames_before = counters["frames"]["ok"]
        x = torch.randn(m, H, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            expected = reference(x)
        for name, fn in fns.items():
            if name.startswith(("mm", "dispatched")):  # the others: fp32 at small M
                torch.testing.assert_close(
                    fn(x).clone(), expected, atol=0.5, rtol=0.05, msg=f"{name} M={m}"
                )
        # The reduction stack runs up to 50x longer than the others at large M:
        # timed apart, so that its heat does not slow the variants compared.
        slow = {n: fn for n, fn in fns.items() if n.startswith("reduction")}
        close = {n: fn for n, fn in fns.items() if n not in slow}
        host_us: dict[str, float] = {}
        us = replay_us(close, x, rounds, calls, host_us)
        us.update(replay_us(slow, x, 3, calls))
        kernel_lists = {name: kernels_per_forward(fn, x) for name, fn in fns.items()}
        kernels = {name: len(k) for name, k in kernel_lists.items()}
        compiles_us = {kind: by_kind(us, kind) for kind in kinds}
        median_us = {kind: statistics.median(t) for kind, t in compiles_us.items()}
        spread = {kind: max(t) / min(t) for kind, t in compiles_us.items()}
        best_inline = min(median_us["mm"], median_us["reduction"])
        # The forced dispatch against its winner inline (reduction up to M = 4).
        winner = "reduction" if m <= 4 else "mm"
        ratios = {
            "dispatched/best inline": median_us["dispatched"] / best_inline,
            f"forced/{winner}": median_us["forced"] / median_us[winner],
        }
        # M = 1 recompiles every variant once: Dynamo specializes a size of 1.
        frames = counters["frames"]["ok"] - frames_before
        row = {
            "M": m,
            "us": us,
            "median_us": median_us,
            "spread": spread,
            "ratios": ratios,
            "host_us_per_call": host_us,
            "kernels": kernels,
            "kernel_lists": kernel_lists,
            "compiles": frames,
        }
        table.append(row)
        cells = "  ".join(
            f"{kind} {median_us[kind]:7.1f} (x{spread[kind]:.3f})" for kind in kinds
        )
        said = "  ".join(f"{k}: {r:.3f}" for k, r in ratios.items())
        counts = ", ".join(
            f"{kind} {sorted(set(by_kind(kernels, kind)))}" for kind in kinds
        )
        print(f"M={m:4d}  {cells}   {said}   kernels {counts}   compiles {frames}")
        host = "  ".join(
            f"{kind} {statistics.median(by_kind(host_us, kind)):.1f}"
            for kind in kinds
            if kind != "reduction"
        )
        print(f"    host us per call (launch only, median of compiles): {host}")
    if args.out:
        out = {
            "device": device,
            "torch": torch.__version__,
            "layers": args.layers,
            "compile": {
                name: {k: v for k, v in variant.items() if k != "fn"}
                for name, variant in variants.items()
            },
            "table": table,
        }
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
