"""Compile a range-dispatched custom op and show what Inductor emits.

Run by scripts/apply_and_build.sh after patching (or alone, against a patched
torch). Registers an op with three impls over the ranges [1, 512], [513, 2048],
[2049, inf] of x.size(1), forces one winner per range, compiles it with
dynamic=True and prints the host-side dispatch, the kernels (C++ on this CPU,
plus the Triton kernels that codegen-only Triton emits for an sm90 target) and
the value check at each range boundary.
"""

import re
import sys

import torch
import torch._inductor.config as inductor_config
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)
from torch._inductor.utils import run_and_get_code


@torch.library.custom_op("demo::scale_act", mutates_args=())
def scale_act(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.relu(x * weight)


@scale_act.register_fake
def _(x, weight):
    return torch.empty_like(x)


def short_impl(x, weight):
    return torch.sin(x * weight)


def medium_impl(x, weight):
    return torch.tanh(x * weight)


def long_impl(x, weight):
    return torch.relu(x * weight)


IMPLS = [short_impl, medium_impl, long_impl]
SPLIT_POINTS = [512, 2048]
FORCED = (
    r"range_1_512_short_impl_\d+$|range_513_2048_medium_impl_\d+$"
    r"|range_2049_inf_long_impl_\d+$"
)


def model(x, weight):
    return scale_act(x, weight)


def main() -> int:
    import torch._inductor.kernel.custom_op as custom_op

    if not hasattr(custom_op, "_build_torch_cond_dispatch"):
        print("demo: this torch is not patched (no _build_torch_cond_dispatch)")
        return 1
    from torch.testing._internal.inductor_codegen_only import (
        kernel_names,
        normalize_triton_code,
        triton_code_for,
        wrapper_dispatch,
    )

    register_custom_op_autotuning(
        scale_act,
        configs=[CustomOpConfig(impl) for impl in IMPLS],
        dispatch_on={"tensor_name": "x", "dim": 1},
        split_points=SPLIT_POINTS,
    )
    weight = torch.randn(64)
    patch = inductor_config.patch(
        {
            "force_disable_caches": True,
            "test_configs.autotune_choice_name_regex": FORCED,
        }
    )
    with patch:
        compiled = torch.compile(model, dynamic=True)
        _, codes = run_and_get_code(compiled, torch.randn(2, 256, 64), weight)
    code = codes[-1]
    print("== host-side dispatch (C++ backend, CPU)")
    print(wrapper_dispatch(code))
    print("== C++ kernels:", ", ".join(kernel_names(code)))

    ok = True
    for size in [511, 512, 513, 2048, 2049, 5000]:
        x = torch.randn(2, size, 64)
        impl = IMPLS[sum(size > p for p in SPLIT_POINTS)]
        good = torch.allclose(compiled(x, weight), impl(x, weight), atol=1e-5)
        ok &= good
        print(f"   size {size:5d} -> {impl.__name__:12s} {'ok' if good else 'WRONG'}")

    torch._dynamo.reset()
    with patch:
        triton = triton_code_for(
            torch.compile(model, dynamic=True), torch.randn(2, 256, 64), weight
        )
    print("== Triton kernels (codegen-only, sm90 target):")
    for section in normalize_triton_code(triton).split("\n\n"):
        if section.startswith("kernel "):
            name = section.split(":", 1)[0].removeprefix("kernel ")
            math_ops = re.findall(r"tl_math\.\w+|libdevice\.\w+|maximum", section)
            print(f"   {name}: {', '.join(sorted(set(math_ops)))}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
