"""How often range autotuning picks the same winners, compile after compile, while
another process keeps a core busy (see BENCHMARKS.md, "Decisions under load").

One op, two impls whose true costs differ by a known ratio (measured here first,
each compiled alone on a quiet machine), dispatched on a dim with split points
256 / 2048. Each compile runs in a fresh process with a fresh Inductor cache, so
no timing is reused; a busy-loop process holds one core meanwhile. Every compile's
winners per range are counted, for the choices timed once (--rounds 1, what the
series did before interleaved rounds) and in interleaved rounds (the default).

Usage: python benchmarks/bench_decision_stability.py [--compiles 10]
           [--rounds 1,3] [--load 1] [--out FILE.json]
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import torch


SPLIT_POINTS = [256, 2048]
SIZES = {"range_1_256": 128, "range_257_2048": 1024, "range_2049_inf": 4096}
DIM = 256


def cheap(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.relu(x * w)


def dear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # The same values, with a transcendental per element on top.
    return torch.relu(x * w) + 0.0 * torch.tanh(x)


def register() -> Any:
    from torch._inductor.kernel.custom_op import (
        CustomOpConfig,
        register_custom_op_autotuning,
    )

    @torch.library.custom_op("stability::scale", mutates_args=())
    def scale(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.relu(x * w)

    @scale.register_fake
    def _(x, w):
        return torch.empty_like(x)

    register_custom_op_autotuning(
        scale,
        configs=[CustomOpConfig(dear), CustomOpConfig(cheap)],
        dispatch_on={"tensor_name": "x", "dim": 0},
        split_points=SPLIT_POINTS,
        include_fallback=False,
    )
    return scale


def one_compile(rounds: int) -> dict[str, str]:
    """Compile the dispatched op once (in this process) and return each range's
    winner, read from the autotuning log."""
    import logging

    import torch._inductor.kernel.custom_op as custom_op
    from torch._inductor.select_algorithm import TimingRounds

    if rounds == 1:  # one timing per choice, as before interleaved rounds
        custom_op.TimingRounds = lambda: TimingRounds(rounds=1, close_call_rounds=0)
    scale = register()
    winners: dict[str, str] = {}

    class Decisions(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if ": winner " in message:
                label = message.split(": winner ")[0].rsplit("_autotuned_", 1)[-1]
                winners[label] = message.split(": winner ")[1].split(";")[0]

    logger = logging.getLogger("torch._inductor.kernel.custom_op.__autotuning")
    logger.addHandler(Decisions(level=logging.INFO))
    logger.setLevel(logging.INFO)
    x = torch.randn(SIZES["range_257_2048"], DIM)
    torch._dynamo.mark_dynamic(x, 0)
    torch.compile(scale)(x, torch.randn(DIM))
    return winners


def true_costs() -> dict[str, dict[str, float]]:
    """Each impl compiled alone per range size, timed on a quiet machine (median of
    interleaved rounds), in ms."""
    from torch._inductor.runtime.benchmarking import benchmarker

    costs: dict[str, dict[str, float]] = {}
    for label, size in SIZES.items():
        x, w = torch.randn(size, DIM), torch.randn(DIM)
        compiled = {f.__name__: torch.compile(f, dynamic=False) for f in (cheap, dear)}
        samples: dict[str, list[float]] = {name: [] for name in compiled}
        for _ in range(5):
            for name, fn in compiled.items():
                samples[name].append(benchmarker.benchmark_cpu(lambda: fn(x, w)))
        costs[label] = {name: statistics.median(s) for name, s in samples.items()}
    return costs


def busy_loop() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compiles", type=int, default=10)
    parser.add_argument("--rounds", default="1,3", help="comma-separated")
    parser.add_argument("--load", type=int, default=1, help="busy processes")
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(one_compile(args.child)))
        return

    costs = true_costs()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, threads "
        f"{torch.get_num_threads()}; true costs (quiet machine), ms:"
    )
    for label, by_impl in costs.items():
        ratio = by_impl["dear"] / by_impl["cheap"]
        print(
            f"  {label}: cheap {by_impl['cheap']:.4f}, dear {by_impl['dear']:.4f} "
            f"({ratio:.2f}x)"
        )
    loads = [
        multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.load)
    ]
    for load in loads:
        load.start()
    results: dict[str, Any] = {"true_costs_ms": costs, "load_processes": args.load}
    try:
        for rounds in [int(r) for r in args.rounds.split(",")]:
            runs = []
            for _ in range(args.compiles):
                with tempfile.TemporaryDirectory() as cache:
                    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
                    start = time.perf_counter()
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", str(rounds)],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    runs.append(
                        {
                            "winners": json.loads(out.stdout.splitlines()[-1]),
                            "seconds": time.perf_counter() - start,
                        }
                    )
            right = sum(all(w == "cheap" for w in r["winners"].values()) for r in runs)
            print(
                f"rounds={rounds}: all ranges right in {right} of {len(runs)} "
                f"compiles; per range: "
                + ", ".join(
                    f"{label} {sum(r['winners'].get(label) == 'cheap' for r in runs)}"
                    for label in SIZES
                )
            )
            results[f"rounds_{rounds}"] = {"right": right, "runs": runs}
    finally:
        for load in loads:
            load.terminate()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
