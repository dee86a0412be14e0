"""Where two compiles of the decode stack differ, kernel by kernel (see
BENCHMARKS.md, section 5): mm inline against the two-winner ("forced") dispatch.

Each is compiled once (bench_decode_stack.py's compile_variant: a fresh Inductor
cache, a code object of its own) and, per M:
  1. timed by CUDA graph replay, as bench_decode_stack.py does;
  2. run 20 times back to back on the GPU under torch.profiler: a long spin kernel
     first, so that the 20 forwards queue behind it and run as a timed replay
     runs, not paced by the profiler's host overhead. Per kernel position in the
     forward: the median device time and the median gap before it, side by side.

Usage (from the repository root, on a CUDA machine):
    python benchmarks/decode_stack_back_to_back.py [--ms 128,64,256]
"""

import argparse
import statistics
import sys
from collections.abc import Callable

import bench_decode_stack as stack
import torch


CALLS = 20


def back_to_back(fn: Callable, x: torch.Tensor) -> list[tuple[str, float, float]]:
    """(kernel, median device us, median gap before it in us), in forward order."""
    for _ in range(5):
        fn(x)
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as p:
        torch.cuda._sleep(300_000_000)  # ~0.15 s: the forwards queue behind it
        for _ in range(CALLS):
            fn(x)
        torch.cuda.synchronize()
    events = [
        (e.name, e.time_range.start, e.time_range.end)
        for e in stack.cuda_kernels(p)
        if "spin" not in e.name
    ]
    per_forward = len(events) // CALLS
    rows = []
    for i in range(per_forward):
        at = [c * per_forward + i for c in range(CALLS)]
        times = [events[j][2] - events[j][1] for j in at]
        gaps = [events[j][1] - events[j - 1][2] for j in at if j > 0]
        rows.append((events[i][0], statistics.median(times), statistics.median(gaps)))
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ms", default="128,64,256")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("decode_stack_back_to_back.py needs a CUDA GPU", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    stack.register()
    fns = {
        kind: stack.compile_variant(kind, 1, layers=6)["fn"]
        for kind in ("mm", "forced")
    }
    for m in (int(m) for m in args.ms.split(",")):
        x = torch.randn(m, stack.H, device="cuda", dtype=torch.bfloat16)
        us = stack.replay_us(fns, x, rounds=25, calls=20)
        print(
            f"M={m} replay us: mm {us['mm']:.1f}, forced {us['forced']:.1f}, "
            f"forced/mm {us['forced'] / us['mm']:.3f}"
        )
        rows = {kind: back_to_back(fn, x) for kind, fn in fns.items()}
        for kind, kernels in rows.items():
            busy = sum(t for _, t, _ in kernels)
            gaps = sum(g for _, _, g in kernels)
            print(
                f"  {kind}: {len(kernels)} kernels, busy {busy:.1f} us, "
                f"gaps {gaps:.1f} us per forward"
            )
        for (name, t1, g1), (other, t2, g2) in zip(rows["mm"], rows["forced"]):
            print(
                f"    {name[:40]:40s} {t1:6.2f} gap {g1:5.2f} | "
                f"{other[:40]:40s} {t2:6.2f} gap {g2:5.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
