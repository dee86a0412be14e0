"""The decode stack with two impls that cost the same (see BENCHMARKS.md, section
5): a workload the range dispatch was not designed for.

decode::woq_linear_close offers mm with the scale on the output (bench_decode_stack's
``mm``) and mm with the scale folded into the dequantized weight; it is registered
with every option at its default (split points 4 / 16 / 64). Against each impl
written inline: three compiles of each variant (fresh Inductor caches), forward
time by CUDA graph replay (medians over the compiles), kernels per forward by
torch.profiler, and each compile's decisions. Run it in a process of its own:
other CUDA-graph models alive in the process change the timings.

Usage (from the repository root, on a CUDA machine):
    python benchmarks/decode_stack_close_impls.py [--ms 2,4,8,16,64,128,256]
"""

import argparse
import statistics
import sys

import bench_decode_stack as stack
import torch
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)


woq_linear_close = stack.woq_linear_op("woq_linear_close")


def mm_scaled_weight(x, wq, scale):
    return x @ (wq.to(x.dtype) * scale)


def register_close() -> None:
    """Register the close op and make "close" / "mm_scaled_weight" stack linears."""
    register_custom_op_autotuning(
        woq_linear_close,
        configs=[CustomOpConfig(stack.mm), CustomOpConfig(mm_scaled_weight)],
        dispatch_on={"tensor_name": "x", "dim": 0},
        split_points=stack.SPLIT_POINTS,
    )
    stack.LINEARS["close"] = woq_linear_close
    stack.LINEARS["mm_scaled_weight"] = mm_scaled_weight


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ms", default="2,4,8,16,64,128,256")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("decode_stack_close_impls.py needs a CUDA GPU", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    register_close()
    kinds = ("mm", "mm_scaled_weight", "close")
    fns = {}
    for i in (1, 2, 3):
        for kind in kinds:
            variant = stack.compile_variant(kind, i, layers=6)
            fns[f"{kind}_{i}"] = variant["fn"]
            if kind == "close":
                winners = [d.split(";")[0] for d in variant["decisions"][:4]]
                print(f"close_{i}: " + "; ".join(winners))
    for m in (int(m) for m in args.ms.split(",")):
        x = torch.randn(m, stack.H, device="cuda", dtype=torch.bfloat16)
        us = stack.replay_us(fns, x, rounds=25, calls=20)
        compiles_us = {kind: stack.by_kind(us, kind) for kind in kinds}
        median = {kind: statistics.median(t) for kind, t in compiles_us.items()}
        kernels = {n: len(stack.kernels_per_forward(fn, x)) for n, fn in fns.items()}
        best = min(median["mm"], median["mm_scaled_weight"])
        cells = "  ".join(
            f"{kind} {median[kind]:.1f} (x{max(t) / min(t):.3f})"
            for kind, t in compiles_us.items()
        )
        counts = ", ".join(
            f"{kind} {sorted(set(stack.by_kind(kernels, kind)))}" for kind in kinds
        )
        print(
            f"M={m:4d}  {cells}  close/best inline {median['close'] / best:.3f}"
            f"  kernels {counts}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
