"""Render benchmark JSON (from bench_range_dispatch.py) as markdown tables and plots.

Usage: python benchmarks/report.py RESULT.json [BASE.json] [--plot OUT.png]
  RESULT.json  figures from the patched torch (any sections)
  BASE.json    the compile section from unpatched 2.11.0, shown side by side
Prints markdown to stdout; --plot writes the e2e latency-vs-M plot (log-log).
"""

import argparse
import json
import sys
from typing import Any


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def pair(base_row: dict, row: dict, key: str) -> str:
    """'upstream / series' for one figure."""
    upstream = base_row.get(key, "error" if "error" in base_row else "-")
    return f"{fmt(upstream)} / {fmt(row.get(key))}"


def compile_table(rows: list[dict], base_rows: list[dict]) -> str:
    base = {(r["ranges"], r["dynamic"]): r for r in base_rows}
    lines = [
        "| ranges R | dim | SubgraphBuffers (2.11.0 / series) | inlines | "
        "benchmark rounds | choices benchmarked | compile s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = base.get((r["ranges"], r["dynamic"]), {})
        cells = [
            pair(b, r, key)
            for key in [
                "subgraph_buffers",
                "inlines",
                "benchmark_rounds",
                "choices_benchmarked",
                "compile_s",
            ]
        ]
        dim = "dynamic" if r["dynamic"] else "static"
        lines.append(f"| {r['ranges']} | {dim} | " + " | ".join(cells) + " |")
    errors = {b["error"] for b in base_rows if "error" in b}
    for error in sorted(errors):
        lines.append(f"\n2.11.0 `error`: `{error}`")
    return "\n".join(lines)


def overhead_table(rows: list[dict]) -> str:
    """Dispatch cost per call: dispatched minus single winner (median of the
    per-round differences), at the wrapper and through torch.compile, each with
    its twin noise floor; and the user-level cond tree vs chain."""
    lines = [
        "| G | single winner: wrapper µs | dispatched: wrapper µs | "
        "**dispatch cost, wrapper µs** | twin noise µs | "
        "dispatch cost, compiled µs | twin noise µs | user tree µs | user chain µs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['groups']} | {fmt(r.get('single_wrapper_us'), 2)} | "
            f"{fmt(r.get('dispatched_wrapper_us'), 2)} | "
            f"**{fmt(r.get('overhead_wrapper_us'), 2)}** | {fmt(r.get('noise_wrapper_us'), 2)} | "
            f"{fmt(r.get('overhead_compiled_us'), 2)} | {fmt(r.get('noise_compiled_us'), 2)} | "
            f"{fmt(r['user_tree_us'])} | {fmt(r['user_chain_us'])} |"
        )
    return "\n".join(lines)


def impl_names(e2e: dict) -> list[str]:
    """The single impls of an e2e section (older files lack the 'impls' key)."""
    if "impls" in e2e:
        return e2e["impls"]
    skip = {"oracle_us", "dispatched_us"}
    return [k[:-3] for k in e2e["rows"][0] if k.endswith("_us") and k not in skip]


def e2e_table(e2e: dict) -> str:
    impls = impl_names(e2e)
    head = " | ".join(f"{name} µs" for name in impls)
    lines = [
        f"| M | {head} | oracle µs | dispatched µs | dispatched / oracle | "
        f"best single ({e2e['best_single']}) / dispatched |",
        "|---" * (len(impls) + 5) + "|",
    ]
    for r in e2e["rows"]:
        cells = " | ".join(fmt(r[f"{name}_us"]) for name in impls)
        lines.append(
            f"| {r['M']} | {cells} | {fmt(r['oracle_us'])} | {fmt(r['dispatched_us'])} | "
            f"{r['dispatched_over_oracle']:.3f} | "
            f"{r['best_single_over_dispatched']:.2f} |"
        )
    return "\n".join(lines)


def plot(e2e: dict, title: str, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = e2e["rows"]
    ms = [r["M"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in impl_names(e2e):
        points = [
            (r["M"], r[f"{name}_us"]) for r in rows if r[f"{name}_us"] is not None
        ]
        ax.plot(*zip(*points), marker="o", label=f"{name} alone (static)")
    ax.plot(ms, [r["oracle_us"] for r in rows], "k--", label="oracle (min per M)")
    ax.plot(
        ms,
        [r["dispatched_us"] for r in rows],
        marker="s",
        lw=2,
        label="range-dispatched",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("M (tokens)")
    ax.set_ylabel("latency, µs (median)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result")
    parser.add_argument("base", nargs="?")
    parser.add_argument("--plot")
    args = parser.parse_args(argv)
    with open(args.result) as f:
        result = json.load(f)
    base = {}
    if args.base:
        with open(args.base) as f:
            base = json.load(f)
    print(f"Device: {result['device_name']}, torch {result['torch']}\n")
    if "compile" in result:
        print(compile_table(result["compile"], base.get("compile", [])) + "\n")
    if "overhead" in result:
        print(overhead_table(result["overhead"]) + "\n")
    for section in ["e2e", "skinny"]:
        if section not in result:
            continue
        e2e = result[section]
        print(
            f"{e2e.get('workload', 'woq_linear')}: {e2e['dtype']}, K = {e2e['K']}, "
            f"N = {e2e['N']}, split_points {e2e['split_points']}, "
            f"dispatched compile {e2e['dispatched_compile_s']:.1f} s\n"
        )
        print(e2e_table(e2e) + "\n")
        if args.plot:
            out = (
                args.plot
                if section == "e2e"
                else args.plot.replace(".png", "_skinny.png")
            )
            title = f"{e2e.get('workload', 'woq_linear')}, {result['device_name']}"
            plot(e2e, title, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
