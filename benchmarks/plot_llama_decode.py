"""Plot examples/llama_woq_decode.py's JSON report: ms per token against batch, one
line per variant. Needs matplotlib (not a test dependency).

Usage: python benchmarks/plot_llama_decode.py REPORT.json OUT.png
"""

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(argv[0]) as f:
        report = json.load(f)
    results = report["results"]
    batches = sorted(next(iter(results.values()))["per_token_ms"], key=int)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for variant, style in zip(results, ("o-", "s--", "^:")):
        times = [results[variant]["per_token_ms"][b] for b in batches]
        ax.plot([int(b) for b in batches], times, style, label=variant)
    ax.set_xscale("log", base=2)
    ax.set_xticks([int(b) for b in batches], batches)
    ax.set_xlabel("batch (sequences decoding)")
    ax.set_ylabel("ms per token (CUDA graph replay)")
    ax.set_title(
        f"Llama {report['size']} decode, {report['device']}, torch {report['torch']}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(argv[1], dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
