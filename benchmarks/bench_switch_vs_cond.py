"""The range dispatch as a balanced torch.cond tree (what the series builds) vs one
N-way torch.ops.higher_order.switch (PyTorch 2.15.0's Switch HOP), inside the
lowering: the same registered op, the same forced winners, compiled by the real
range path; only the dispatch that _build_torch_cond_dispatch returns differs.

For G = 2, 4, 8, 16 groups (one impl per range, ``x * w + i``, tiny tensors so that
host time is all there is), each variant is compiled with ``dynamic=True`` and timed:

  compile s   wall time of the first call (dispatch tracing, lowering, codegen),
              median over --compiles fresh compiles, the variants alternating;
  wrapper us  the generated ``call(args)`` at the deepest branch of the tree (the
              last group), interleaved rounds, median; the same op compiled with one
              winner for every range (no dispatch) is the baseline, and the dispatch
              cost is the median of the per-round differences.

The switch's index is one SymInt: a chain of ``torch.sym_ite(size <= bound, i,
...)`` (a sum of comparisons would guard on each of them and specialize the
graph). Needs PyTorch >= 2.15 with the series applied.

Usage: python benchmarks/bench_switch_vs_cond.py [--quick] [--out FILE.json]
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any
from unittest import mock

import torch
import torch._inductor.config as inductor_config
import torch._inductor.kernel.custom_op as custom_op


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_range_dispatch import (  # noqa: E402
    _compile_with_winners,
    interleaved_us,
    median_difference,
    offset_impls,
    register_custom_op_autotuning,
    scale_act,
    write_report,
)


TREE = custom_op.__dict__.get("_build_torch_cond_dispatch")


def switch_dispatch(
    range_groups: Sequence[Any],
    dispatch_index: int,
    dispatch_dim: int,
    num_symbol_operands: int = 0,
    **options: Any,
) -> Callable[..., Any]:
    """_build_torch_cond_dispatch's contract, built as one N-way switch: the same
    merged groups and leaf branches, selected by a sym_ite chain on the size."""
    from torch._higher_order_ops.switch import switch_op

    tree = TREE(
        range_groups, dispatch_index, dispatch_dim, num_symbol_operands, **options
    )
    branches, groups = tree.branches, tree.groups
    if len(groups) == 1:
        return tree
    bounds = [int(bounds.end) for bounds, _ in groups[:-1]]

    def dispatch(*operands: Any) -> Any:
        size = operands[dispatch_index].size(dispatch_dim)
        index = size - size + len(bounds)
        for i in reversed(range(len(bounds))):
            index = torch.sym_ite(size <= bounds[i], size - size + i, index)
        return switch_op(index, tuple(branches), operands)[0]

    dispatch.branches = branches  # type: ignore[attr-defined]
    dispatch.groups = groups  # type: ignore[attr-defined]
    return dispatch


def compile_variant(
    kind: str, name: str, winners: list[str], bounds: list[int], example: tuple
) -> tuple[float, Callable, Callable]:
    """(compile s, compiled function, wrapper call) with the tree or the switch."""
    builder = TREE if kind == "tree" else switch_dispatch
    start = time.perf_counter()
    with mock.patch.object(custom_op, "_build_torch_cond_dispatch", builder):
        compiled, wrapper = _compile_with_winners(name, winners, bounds, example)
    return time.perf_counter() - start, compiled, wrapper


def call_wrapper(wrapper: Callable, args: list[Any]) -> Any:
    # The generated call() consumes its argument list.
    return wrapper(list(args))


def measure(groups: int, compiles: int, rounds: int, batch: int) -> dict[str, Any]:
    impls = offset_impls(groups)
    names = [impl.__name__ for impl in impls]
    bounds = [8 * (i + 1) for i in range(groups - 1)]
    weight = torch.randn(4)
    x = torch.randn(2, 8 * groups + 3, 4)  # the last group: the tree's deepest leaf
    register_custom_op_autotuning(
        scale_act,
        configs=[custom_op.CustomOpConfig(impl) for impl in impls],
        dispatch_on={"tensor_name": "x", "dim": 1},
        split_points=bounds,
    )
    expected = impls[-1](x, weight)
    args = [2, x.size(1), 4, x, weight]  # call()'s: the symbols, then the tensors
    compile_s: dict[str, list[float]] = {"tree": [], "switch": []}
    wrappers: dict[str, Callable[[], Any]] = {}
    for n in range(compiles):
        for kind in ["tree", "switch"] if n % 2 == 0 else ["switch", "tree"]:
            seconds, compiled, wrapper = compile_variant(
                kind, f"{kind}_{groups}_{n}", names, bounds, (x, weight)
            )
            compile_s[kind].append(seconds)
            torch.testing.assert_close(compiled(x, weight), expected)
            torch.testing.assert_close(call_wrapper(wrapper, args)[0], expected)
            wrappers[kind] = functools.partial(call_wrapper, wrapper, args)
    _, _, single = compile_variant(
        "tree", f"single_{groups}", [names[-1]] * groups, bounds, (x, weight)
    )
    wrappers["single"] = functools.partial(call_wrapper, single, args)
    samples = interleaved_us(wrappers, rounds, batch)
    row: dict[str, Any] = {"groups": groups, "compiles": compiles, "rounds": rounds}
    for kind in ["tree", "switch"]:
        row[f"{kind}_compile_s"] = statistics.median(compile_s[kind])
        row[f"{kind}_wrapper_us"] = statistics.median(samples[kind])
        row[f"{kind}_dispatch_us"] = median_difference(samples[kind], samples["single"])
    row["single_wrapper_us"] = statistics.median(samples["single"])
    row["switch_minus_tree_us"] = median_difference(samples["switch"], samples["tree"])
    print(f"  {json.dumps({k: round(v, 3) for k, v in row.items()})}", flush=True)
    return row


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="G = 2 only, few rounds")
    parser.add_argument("--groups", default="2,4,8,16")
    parser.add_argument("--compiles", type=int, default=3)
    parser.add_argument("--out", help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    if TREE is None or not hasattr(torch.ops.higher_order, "switch"):
        print(
            "bench_switch_vs_cond.py: needs PyTorch >= 2.15 (the Switch HOP) with the "
            f"series applied; this is torch {torch.__version__}",
            file=sys.stderr,
        )
        return 2
    torch.set_num_threads(1)
    inductor_config.force_disable_caches = True
    groups = [2] if args.quick else [int(g) for g in args.groups.split(",")]
    rounds, batch = (21, 100) if args.quick else (301, 400)
    compiles = 1 if args.quick else args.compiles
    print(f"device cpu, torch {torch.__version__}, one thread", flush=True)
    rows = [measure(g, compiles, rounds, batch) for g in groups]
    result = {"device": "cpu", "torch": torch.__version__, "switch_vs_cond": rows}
    write_report(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
