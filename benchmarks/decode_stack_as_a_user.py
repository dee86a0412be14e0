"""The decode stack as a user compiles it (see BENCHMARKS.md, section 5): an
nn.Module with its weights as buffers, mode="reduce-overhead", once with
dynamic=True and once with the batch marked dynamic, for each range-dispatched op:
  forced      two winners (the reduction for M <= 4, mm above);
  dispatched  the default registration (winners by Inductor's benchmarks);
  close       two impls that cost the same (decode_stack_close_impls.py).
After the first call (M = 8), every range boundary (2 ... 256) runs under
torch.compiler.set_stance("fail_on_recompile"), three calls each (warm-up,
record, replay), the last compared with the eager stack of the winner's impl.
Prints the frames compiled, the largest difference and the CUDA-graph skips per
variant and mode; exits 1 on a mismatch or a recompile.

Usage (from the repository root, on a CUDA machine):
    python benchmarks/decode_stack_as_a_user.py
"""

import sys

import bench_decode_stack as stack
import torch
import torch._inductor.config as inductor_config
from decode_stack_close_impls import register_close
from torch._dynamo.utils import counters
from torch._inductor.utils import fresh_cache


SIZES = [2, 3, 4, 5, 6, 15, 16, 17, 63, 64, 65, 127, 128, 129, 256]


def compiled(variant: str, mode: str) -> torch.nn.Module:
    """The stack with ``variant``'s linear, compiled and called once at M = 8."""
    torch._dynamo.reset()
    model = stack.stack_compiled_apart(variant, 6, f"{variant}_{mode}")
    options = {"dynamic": True} if mode == "dynamic" else {}
    f = torch.compile(model, mode="reduce-overhead", **options)
    x = torch.randn(8, stack.H, device="cuda", dtype=torch.bfloat16)
    if mode == "mark_dynamic":
        torch._dynamo.mark_dynamic(x, 0)
    no_fallback = stack.NO_FALLBACK if variant == "forced" else {}
    with fresh_cache(), inductor_config.patch(no_fallback):
        f(x)
    return f


def main() -> int:
    if not torch.cuda.is_available():
        print("decode_stack_as_a_user.py needs a CUDA GPU", file=sys.stderr)
        return 2
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    stack.register()
    register_close()
    eager = {name: stack.Stack(name, 6) for name in ("mm", "reduction")}
    failures = 0
    torch.set_grad_enabled(False)
    for variant in ("forced", "dispatched", "close"):
        for mode in ("dynamic", "mark_dynamic"):
            frames = counters["frames"]["ok"]
            f = compiled(variant, mode)
            worst = 0.0
            with torch.compiler.set_stance("fail_on_recompile"):
                for m in SIZES:
                    x = torch.randn(m, stack.H, device="cuda", dtype=torch.bfloat16)
                    impl = "reduction" if variant == "forced" and m <= 4 else "mm"
                    expected = eager[impl](x)
                    try:
                        for _ in range(3):  # warm-up, record, replay
                            out = f(x).clone()
                        torch.testing.assert_close(out, expected, atol=0.5, rtol=0.05)
                    except (AssertionError, RuntimeError) as e:
                        failures += 1
                        print(f"  {variant} {mode} M={m}: {str(e)[:300]}")
                        continue
                    worst = max(worst, (out - expected).abs().max().item())
            print(
                f"{variant:10s} {mode:12s}: M = {', '.join(map(str, SIZES))}; "
                f"frames {counters['frames']['ok'] - frames}, "
                f"max |compiled - eager| {worst:.3f}, "
                f"cudagraph_skips {counters['inductor']['cudagraph_skips']}"
            )
    print(f"mismatches or recompiles: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
