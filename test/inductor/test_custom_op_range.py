# Owner(s): ["module: inductor"]
"""The kernels Inductor emits for range-based custom-op dispatch (this project's
own suite; the series' tests are in the test files its patches create).

The Triton source comes from a CPU machine through the codegen-only helper
(torch/testing/_internal/inductor_codegen_only.py, a stand-in driver with an sm90
target); the C++ kernels from a real CPU compile; on a GPU, the real Triton
kernels must equal the codegen-only ones. Runs against a torch with the series
applied (scripts/apply_and_build.sh).

Winners are forced per range through ``test_configs.autotune_choice_name_regex``
(one choice left per range), so no result depends on timing luck.
"""

import math
import re
import sys
import textwrap
import unittest
from collections.abc import Callable
from typing import Any
from unittest import mock

import torch
import torch._inductor.config as inductor_config
from torch._dynamo.utils import counters
from torch._inductor import lowering
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)
from torch._inductor.test_case import TestCase, run_tests
from torch._inductor.utils import run_and_get_code
from torch.testing import FileCheck
from torch.testing._internal.common_utils import (
    instantiate_parametrized_tests,
    parametrize,
)
from torch.testing._internal.inductor_codegen_only import (
    kernel_names,
    normalize_triton_code,
    triton_code_for,
    wrapper_dispatch,
)
from torch.torch_version import TorchVersion


HAS_CUDA = torch.cuda.is_available()
# What differs between the two PyTorch releases the series supports (2.11, 2.15).
TORCH_2_15 = TorchVersion(torch.__version__) >= (2, 15)
# 2.15 registers user lowerings in their own table, consulted first.
USER_LOWERINGS = getattr(lowering, "user_lowerings", lowering.lowerings)
# relu's max in a Triton kernel.
RELU_OP = "tl.maximum" if TORCH_2_15 else "triton_helpers.maximum"


# ---------------------------------------------------------------- ops under test


@torch.library.custom_op("range_kernels::scale_act", mutates_args=())
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


def cube_impl(x, weight):
    return (x * weight) ** 3


IMPLS = {f.__name__: f for f in (short_impl, medium_impl, long_impl, cube_impl)}


# ---------------------------------------------------------------- helpers


def range_label(start: int, end: float) -> str:
    return f"range_{start}_{'inf' if end == math.inf else int(end)}"


def ranges_of(split_points: list[int]) -> list[tuple[int, float]]:
    starts = [1] + [p + 1 for p in split_points]
    return list(zip(starts, [*split_points, math.inf]))


def forced_winners(split_points: list[int], winners: list[str]) -> Any:
    """A config patch that leaves exactly one choice, ``winners[i]``, in range i."""
    assert len(winners) == len(split_points) + 1
    regex = "|".join(
        rf"_autotuned_{range_label(start, end)}_{impl}(_\S*)?$"
        for (start, end), impl in zip(ranges_of(split_points), winners)
    )
    # Other autotuning (e.g. of an mm inside an impl) stays, except the op's own
    # fallback choice (<name>_fallback_default on 2.11, <namespace>_<op>_fallback
    # on 2.15).
    regex += "|^(?!.*(?:_autotuned_|_fallback$))"
    return inductor_config.patch({"test_configs.autotune_choice_name_regex": regex})


def expected_impl(size: int, split_points: list[int], winners: list[str]) -> str:
    for (_, end), impl in zip(ranges_of(split_points), winners):
        if size <= end:
            return impl
    raise AssertionError("unreachable: the last range is unbounded")


def register_scale_act(split_points: list[int], impls=None, **dispatch) -> None:
    impls = impls or [short_impl, medium_impl, long_impl]
    register_custom_op_autotuning(
        scale_act,
        configs=[CustomOpConfig(impl) for impl in impls],
        dispatch_on={"tensor_name": "x", "dim": 1, **dispatch},
        split_points=split_points,
    )


def scale_act_model(x, weight):
    return scale_act(x, weight)


# The namespaces of the ops these tests register autotuning for.
TEST_NAMESPACES = frozenset({"range_kernels"})


def restore_lowerings_of(namespaces: frozenset[str], saved: dict[Any, Any]) -> None:
    """Put Inductor's lowerings of the ops in ``namespaces`` back as in ``saved``:
    register_custom_op_autotuning installs one per op, for good."""
    for op in [
        op for op in USER_LOWERINGS if getattr(op, "namespace", None) in namespaces
    ]:
        if op in saved:
            USER_LOWERINGS[op] = saved[op]
        else:
            del USER_LOWERINGS[op]


class RangeTestCase(TestCase):
    def setUp(self) -> None:
        super().setUp()
        torch._dynamo.reset()
        counters.clear()
        self._config = inductor_config.patch(force_disable_caches=True)
        self._config.__enter__()
        self.addCleanup(restore_lowerings_of, TEST_NAMESPACES, dict(USER_LOWERINGS))

    def tearDown(self) -> None:
        self._config.__exit__(None, None, None)
        torch._dynamo.reset()
        super().tearDown()

    def check_scale_act(
        self, f: Callable, sizes: list[int], split_points, winners, batch=2, dim=64
    ) -> None:
        """f gives winners[range of size] at each size, checked by value."""
        weight = torch.randn(dim)
        for size in sizes:
            x = torch.randn(batch, size, dim)
            impl = expected_impl(max(size, 1), split_points, winners)
            self.assertEqual(f(x, weight), IMPLS[impl](x, weight), msg=f"size {size}")


# ---------------------------------------------------------------- lowering behaviour

WINNERS = ["short_impl", "medium_impl", "long_impl"]


# ---------------------------------------------------------------- the normalizer

# A CUDA wrapper in the shape Inductor writes it, volatile parts included.
_CUDA_WRAPPER = """\
# kernel path: /tmp/torchinductor_u/ab/cabc123.py
# Source node to ATen node mapping:
#   sin => sin
triton_poi_fused_sin_0 = async_compile.triton('triton_poi_fused_sin_0', '''
import triton
import triton.language as tl

from torch._inductor.runtime import triton_helpers, triton_heuristics
from torch._inductor.runtime.hints import DeviceProperties

@triton_heuristics.pointwise(
    size_hints={'x': 1024},
    filename=__file__,
    triton_meta={'signature': {'in_ptr0': '*fp32'}, 'device': DeviceProperties(type='cuda', index=0, multi_processor_count=132, cc=90)},
    inductor_meta={'kernel_name': 'triton_poi_fused_sin_0', 'backend_hash': 'DEADBEEF'},
    min_elem_per_thread=0
)
@triton.jit
def triton_poi_fused_sin_0(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    tmp0 = tl.load(in_ptr0 + (xindex), xmask)
    tl.store(out_ptr0 + (xindex), tl_math.sin(tmp0), xmask)
''', device_str='cuda')

def true_graph_0(args):
    true_graph_0_arg0_1, = args
    args.clear()
    s0 = true_graph_0_arg0_1
    assert_size_stride(true_graph_0_arg1_1, (s0, ), (1, ))
    with torch.cuda._DeviceGuard(0):
        torch.cuda.set_device(0)
        true_graph_0_buf0 = empty_strided_cuda((s0, ), (1, ), torch.float32)
        # Topologically Sorted Source Nodes: [sin], Original ATen: [aten.sin]
        stream0 = get_raw_stream(0)
        triton_poi_fused_sin_0.run(true_graph_0_arg1_1, true_graph_0_buf0, s0, stream=stream0)
        del true_graph_0_arg1_1
    return (true_graph_0_buf0, )

class Runner:
    def call(self, args):
        arg0_1, arg1_1 = args
        args.clear()
        buf0 = [None] * 1
        if s0 <= 512:

            # subgraph: true_graph_0
            true_graph_0_args = [arg1_1, s0]
            buf0 = true_graph_0(true_graph_0_args)
        else:
            with torch.cuda._DeviceGuard(0):
                buf0 = false_graph_0(false_graph_0_args)
        return (buf0[0], )

def get_args():
    pass
"""


class TestNormalizer(TestCase):
    def test_keeps_kernels_and_dispatch_drops_volatile_parts(self) -> None:
        self.assertExpectedInline(
            normalize_triton_code(_CUDA_WRAPPER),
            """\
kernel triton_poi_fused_sin_0:
def triton_poi_fused_sin_0(in_ptr0, out_ptr0, xnumel, XBLOCK : tl.constexpr):
    tmp0 = tl.load(in_ptr0 + (xindex), xmask)
    tl.store(out_ptr0 + (xindex), tl_math.sin(tmp0), xmask)

def true_graph_0(args):
    triton_poi_fused_sin_0.run(true_graph_0_arg1_1, true_graph_0_buf0, s0)
    return (true_graph_0_buf0, )

def call(args):
    if s0 <= 512:
        # subgraph: true_graph_0
        buf0 = true_graph_0(true_graph_0_args)
    else:
        buf0 = false_graph_0(false_graph_0_args)
    return (buf0[0], )
""",
        )

    def test_kernel_names_and_wrapper_dispatch(self) -> None:
        self.assertEqual(kernel_names(_CUDA_WRAPPER), ["triton_poi_fused_sin_0"])
        dispatch = wrapper_dispatch(_CUDA_WRAPPER)
        self.assertNotIn("kernel ", dispatch)
        self.assertIn("    if s0 <= 512:\n        # subgraph: true_graph_0", dispatch)

    def test_codegen_only_restores_driver_and_config(self) -> None:
        import triton
        from torch.testing._internal import inductor_codegen_only

        before = triton.runtime.driver._active
        with inductor_codegen_only.codegen_only_triton():
            self.assertEqual(inductor_config.cpu_backend, "triton")
            target = triton.runtime.driver._active.get_current_target()
            self.assertEqual(
                (target.backend, target.arch, target.warp_size), ("cuda", 90, 32)
            )
        self.assertIs(triton.runtime.driver._active, before)
        self.assertNotEqual(inductor_config.cpu_backend, "triton")

    def test_unavailable_triton_is_a_clear_error(self) -> None:
        from torch.testing._internal import inductor_codegen_only

        with (
            mock.patch.dict(sys.modules, {"triton": None}),
            self.assertRaisesRegex(
                inductor_codegen_only.CodegenOnlyUnavailable,
                "codegen-only Triton needs the triton package",
            ),
        ):
            with inductor_codegen_only.codegen_only_triton():
                pass


# ---------------------------------------------------------------- emitted kernels


def _elementwise(name: str, fn: Callable) -> Callable:
    def impl(x, weight):
        return fn(x * weight)

    impl.__name__ = name
    return impl


# Eight impls whose kernels differ in one op, for the 8-group tree.
EIGHT_IMPLS = [
    _elementwise(f"g{i}_{fn.__name__}", fn)
    for i, fn in enumerate(
        [
            torch.sin,
            torch.cos,
            torch.tanh,
            torch.sigmoid,
            torch.exp,
            torch.abs,
            torch.neg,
            torch.relu,
        ]
    )
]
IMPLS.update({impl.__name__: impl for impl in EIGHT_IMPLS})

KERNEL_CASES = {
    "three_groups": ([512, 2048], WINNERS),
    "eight_groups": ([64 * i for i in range(1, 8)], [f.__name__ for f in EIGHT_IMPLS]),
    "merged_ranges": ([512, 2048], ["short_impl", "short_impl", "long_impl"]),
    "single_winner": ([512, 2048], ["medium_impl"] * 3),
}


TRITON_CALL = "triton_poi_fused_scale_act_{}.run("
CPP_CALL = "cpp_fused_scale_act_{}("

# The host dispatch each kernel case compiles to with dynamic=True: "if B" tests
# the dispatch size against B, "else" is its other branch, "k<i>" runs kernel i.
DISPATCH_TREES = {
    "three_groups": """
        if 2048
          if 512
            k0
          else
            k1
        else
          k2
    """,
    "eight_groups": """
        if 256
          if 128
            if 64
              k0
            else
              k1
          else
            if 192
              k2
            else
              k3
        else
          if 384
            if 320
              k4
            else
              k5
          else
            if 448
              k6
            else
              k7
    """,
    "merged_ranges": """
        if 2048
          k0
        else
          k1
    """,
    "single_winner": "k0",
}


def seed_dispatch(x, weight):
    """The seed's example: raw torch.cond on x.shape[1], nested."""
    return torch.cond(
        x.shape[1] <= 512,
        short_impl,
        lambda x, w: torch.cond(x.shape[1] <= 2048, medium_impl, long_impl, (x, w)),
        (x, weight),
    )


def seed_reference(x, weight):
    impl = (
        short_impl
        if x.shape[1] <= 512
        else medium_impl
        if x.shape[1] <= 2048
        else long_impl
    )
    return impl(x, weight)


class KernelTestCase(RangeTestCase):
    def register_case(self, case: str) -> tuple[list[int], list[str]]:
        split_points, winners = KERNEL_CASES[case]
        impls = [IMPLS[name] for name in dict.fromkeys(winners)]
        register_scale_act(split_points, impls=impls)
        return split_points, winners

    def triton_codegen(self, case: str, dynamic: bool = True, size: int = 256) -> str:
        """Codegen-only Triton (CPU machine, sm90 target) for a kernel case."""
        split_points, winners = self.register_case(case)
        f = torch.compile(scale_act_model, dynamic=dynamic)
        with forced_winners(split_points, winners):
            return triton_code_for(f, torch.randn(2, size, 64), torch.randn(64))

    def compiled(self, case: str, device: str, dynamic: bool = True, size: int = 256):
        """(compiled fn, wrapper code) of a real compile of a kernel case."""
        split_points, winners = self.register_case(case)
        f = torch.compile(scale_act_model, dynamic=dynamic)
        x = torch.randn(2, size, 64, device=device)
        with forced_winners(split_points, winners):
            _, codes = run_and_get_code(f, x, torch.randn(64, device=device))
        return f, codes[-1]

    def check_dispatch_tree(self, code: str, tree: str, kernel_call: str) -> None:
        """FileCheck the host dispatch of ``code`` against ``tree`` (see
        DISPATCH_TREES): every ``if``/``else`` and kernel call in order, each at its
        depth, and no other ``if``. ``kernel_call`` formats the call of kernel i."""
        dispatch = wrapper_dispatch(code)
        check, ifs = FileCheck(), 0
        for line in textwrap.dedent(tree).strip().splitlines():
            token = line.strip()
            indent = "\n" + "    " * ((len(line) - len(line.lstrip())) // 2 + 1)
            if token.startswith("if "):
                ifs += 1
                check.check(f"{indent}if s27 <= {token[3:]}:")
            elif token == "else":
                check.check(f"{indent}else:")
            else:
                check.check(indent + kernel_call.format(int(token[1:])))
        check.run(dispatch)
        FileCheck().check_count("if ", ifs, exactly=True).run(dispatch)

    def check_kernel_ops(self, code: str, ops: list[str]) -> None:
        """Kernel i of ``code`` computes ``ops[i]``, and there are no others."""
        names = kernel_names(code)
        self.assertEqual(len(names), len(ops))
        normalized = normalize_triton_code(code)
        for name, op in zip(names, ops):
            section = normalized.split(f"kernel {name}:")[1].split("\n\n")[0]
            self.assertIn(op, section, msg=name)

    def boundary_sizes(self, split_points: list[int]) -> list[int]:
        return sorted(
            {n for p in split_points for n in (p, p + 1) if n >= 2}
            | {2, 3 * split_points[-1]}
        )


class TestEmittedTritonCodegenOnly(KernelTestCase):
    """Triton source emitted on this CPU machine for an sm90 target; nothing runs."""

    def triton_text(self, code: str) -> str:
        """The normalized Triton of ``code``, as 2.15 writes it. The releases differ
        in one line of these kernels: relu's max is triton_helpers.maximum(a, b) on
        2.11 and tl.maximum(a, b, tl.PropagateNan.ALL) on 2.15 (the same values)."""
        text = normalize_triton_code(code)
        if not TORCH_2_15:
            text = re.sub(
                r"triton_helpers\.maximum\((\w+), (\w+)\)",
                r"tl.maximum(\1, \2, tl.PropagateNan.ALL)",
                text,
            )
        return text

    def test_seed_cond(self) -> None:
        code = triton_code_for(
            torch.compile(seed_dispatch, dynamic=True),
            torch.randn(2, 256, 64),
            torch.randn(64),
        )
        self.assertEqual(
            kernel_names(code),
            [
                "triton_poi_fused_mul_sin_0",
                "triton_poi_fused_mul_tanh_1",
                "triton_poi_fused_mul_relu_2",
            ],
        )
        self.assertExpectedInline(
            self.triton_text(code),
            """\
kernel triton_poi_fused_mul_sin_0:
def triton_poi_fused_mul_sin_0(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = tl_math.sin(tmp2)
    tl.store(out_ptr0 + (x2), tmp3, xmask)

kernel triton_poi_fused_mul_tanh_1:
def triton_poi_fused_mul_tanh_1(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = libdevice.tanh(tmp2)
    tl.store(out_ptr0 + (x2), tmp3, xmask)

kernel triton_poi_fused_mul_relu_2:
def triton_poi_fused_mul_relu_2(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = tl.full([1], 0, tl.int32)
    tmp4 = tl.maximum(tmp3, tmp2, tl.PropagateNan.ALL)
    tl.store(out_ptr0 + (x2), tmp4, xmask)

def call(args):
    if s27 <= 512:
        # subgraph: true_graph_0
        triton_poi_fused_mul_sin_0_xnumel = s27*s53*s77
        triton_poi_fused_mul_sin_0.run(true_graph_0_arg1_1, true_graph_0_arg0_1, true_graph_0_buf0, s53, triton_poi_fused_mul_sin_0_xnumel)
        buf0 = (true_graph_0_buf0,)
    else:
        # subgraph: false_graph_0
        if s27 <= 2048:
            # subgraph: true_graph_0
            triton_poi_fused_mul_tanh_1_xnumel = s27*s53*s77
            triton_poi_fused_mul_tanh_1.run(false_graph_0_true_graph_0_arg1_1, false_graph_0_true_graph_0_arg0_1, false_graph_0_true_graph_0_buf0, s53, triton_poi_fused_mul_tanh_1_xnumel)
            false_graph_0_buf0 = (false_graph_0_true_graph_0_buf0,)
        else:
            # subgraph: false_graph_0
            triton_poi_fused_mul_relu_2_xnumel = s27*s53*s77
            triton_poi_fused_mul_relu_2.run(false_graph_0_false_graph_0_arg1_1, false_graph_0_false_graph_0_arg0_1, false_graph_0_false_graph_0_buf0, s53, triton_poi_fused_mul_relu_2_xnumel)
            false_graph_0_buf0 = (false_graph_0_false_graph_0_buf0,)
        false_graph_0_buf1 = false_graph_0_buf0[0]
        buf0 = (false_graph_0_buf1,)
    buf1 = buf0[0]
    return (buf1, )
""",
        )

    def test_three_groups(self) -> None:
        code = self.triton_codegen("three_groups")
        self.assertExpectedInline(
            self.triton_text(code),
            """\
kernel triton_poi_fused_scale_act_0:
def triton_poi_fused_scale_act_0(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = tl_math.sin(tmp2)
    tl.store(out_ptr0 + (x2), tmp3, xmask)

kernel triton_poi_fused_scale_act_1:
def triton_poi_fused_scale_act_1(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = libdevice.tanh(tmp2)
    tl.store(out_ptr0 + (x2), tmp3, xmask)

kernel triton_poi_fused_scale_act_2:
def triton_poi_fused_scale_act_2(in_ptr0, in_ptr1, out_ptr0, ks0, xnumel, XBLOCK : tl.constexpr):
    xoffset = tl.program_id(0) * XBLOCK
    xindex = xoffset + tl.arange(0, XBLOCK)[:]
    xmask = xindex < xnumel
    x2 = xindex
    x0 = (xindex % ks0)
    tmp0 = tl.load(in_ptr0 + (x2), xmask, eviction_policy='evict_last')
    tmp1 = tl.load(in_ptr1 + (x0), xmask, eviction_policy='evict_last')
    tmp2 = tmp0 * tmp1
    tmp3 = tl.full([1], 0, tl.int32)
    tmp4 = tl.maximum(tmp3, tmp2, tl.PropagateNan.ALL)
    tl.store(out_ptr0 + (x2), tmp4, xmask)

def call(args):
    if s27 <= 2048:
        # subgraph: scale_act_true_graph_0
        if s27 <= 512:
            # subgraph: true_graph_0
            triton_poi_fused_scale_act_0_xnumel = s27*s53*s77
            triton_poi_fused_scale_act_0.run(scale_act_true_graph_0_true_graph_0_arg0_1, scale_act_true_graph_0_true_graph_0_arg1_1, scale_act_true_graph_0_true_graph_0_buf0, s53, triton_poi_fused_scale_act_0_xnumel)
            scale_act_true_graph_0_buf0 = (scale_act_true_graph_0_true_graph_0_buf0,)
        else:
            # subgraph: false_graph_0
            triton_poi_fused_scale_act_1_xnumel = s27*s53*s77
            triton_poi_fused_scale_act_1.run(scale_act_true_graph_0_false_graph_0_arg0_1, scale_act_true_graph_0_false_graph_0_arg1_1, scale_act_true_graph_0_false_graph_0_buf0, s53, triton_poi_fused_scale_act_1_xnumel)
            scale_act_true_graph_0_buf0 = (scale_act_true_graph_0_false_graph_0_buf0,)
        scale_act_true_graph_0_buf1 = scale_act_true_graph_0_buf0[0]
        buf0 = (scale_act_true_graph_0_buf1,)
    else:
        # subgraph: scale_act_false_graph_0
        triton_poi_fused_scale_act_2_xnumel = s27*s53*s77
        triton_poi_fused_scale_act_2.run(scale_act_false_graph_0_arg0_1, scale_act_false_graph_0_arg1_1, scale_act_false_graph_0_buf0, s53, triton_poi_fused_scale_act_2_xnumel)
        buf0 = (scale_act_false_graph_0_buf0,)
    buf1 = buf0[0]
    return (buf1, )
""",
        )

    def test_eight_groups(self) -> None:
        code = self.triton_codegen("eight_groups")
        self.check_kernel_ops(
            code,
            [
                "tl_math.sin",
                "tl_math.cos",
                "libdevice.tanh",
                "tl.sigmoid",
                "libdevice.exp",
                "tl_math.abs",
                "-tmp2",
                RELU_OP,
            ],
        )
        self.check_dispatch_tree(code, DISPATCH_TREES["eight_groups"], TRITON_CALL)

    def test_merged_ranges_have_no_kernel_of_their_own(self) -> None:
        code = self.triton_codegen("merged_ranges")
        self.check_kernel_ops(code, ["tl_math.sin", RELU_OP])
        self.check_dispatch_tree(code, DISPATCH_TREES["merged_ranges"], TRITON_CALL)

    def test_single_winner_has_no_branch(self) -> None:
        code = self.triton_codegen("single_winner")
        self.check_kernel_ops(code, ["libdevice.tanh"])
        self.check_dispatch_tree(code, DISPATCH_TREES["single_winner"], TRITON_CALL)

    def test_dynamic_false_has_no_branch(self) -> None:
        # x.size(1) is 1000: the middle range's winner alone, its size a constant.
        code = self.triton_codegen("three_groups", dynamic=False, size=1000)
        self.check_kernel_ops(code, ["libdevice.tanh"])
        self.check_dispatch_tree(code, "k0", TRITON_CALL)
        FileCheck().check("xnumel = 128000").run(normalize_triton_code(code))


class TestEmittedCpp(KernelTestCase):
    """The same cases on the C++ backend, compiled and run on this CPU."""

    def check_values(self, case: str, f: Callable) -> None:
        split_points, winners = KERNEL_CASES[case]
        with torch.compiler.set_stance("fail_on_recompile"):
            self.check_scale_act(
                f, self.boundary_sizes(split_points), split_points, winners
            )

    def test_seed_cond(self) -> None:
        f = torch.compile(seed_dispatch, dynamic=True)
        weight = torch.randn(64)
        _, (code,) = run_and_get_code(f, torch.randn(2, 256, 64), weight)
        self.assertEqual(
            kernel_names(code),
            ["cpp_fused_mul_sin_0", "cpp_fused_mul_tanh_1", "cpp_fused_mul_relu_2"],
        )
        self.assertExpectedInline(
            wrapper_dispatch(code),
            """\
def call(args):
    if s27 <= 512:
        # subgraph: true_graph_0
        cpp_fused_mul_sin_0(true_graph_0_arg1_1, true_graph_0_arg0_1, true_graph_0_buf0, s27, s77, s53)
        buf0 = (true_graph_0_buf0,)
    else:
        # subgraph: false_graph_0
        if s27 <= 2048:
            # subgraph: true_graph_0
            cpp_fused_mul_tanh_1(false_graph_0_true_graph_0_arg1_1, false_graph_0_true_graph_0_arg0_1, false_graph_0_true_graph_0_buf0, s27, s77, s53)
            false_graph_0_buf0 = (false_graph_0_true_graph_0_buf0,)
        else:
            # subgraph: false_graph_0
            cpp_fused_mul_relu_2(false_graph_0_false_graph_0_arg1_1, false_graph_0_false_graph_0_arg0_1, false_graph_0_false_graph_0_buf0, s27, s77, s53)
            false_graph_0_buf0 = (false_graph_0_false_graph_0_buf0,)
        false_graph_0_buf1 = false_graph_0_buf0[0]
        buf0 = (false_graph_0_buf1,)
    buf1 = buf0[0]
    return (buf1, )
""",
        )
        with torch.compiler.set_stance("fail_on_recompile"):
            for size in [256, 1024, 4096]:
                x = torch.randn(2, size, 64)
                self.assertEqual(f(x, weight), seed_reference(x, weight))

    def test_three_groups(self) -> None:
        f, code = self.compiled("three_groups", "cpu")
        self.assertEqual(len(kernel_names(code)), 3)
        self.check_dispatch_tree(code, DISPATCH_TREES["three_groups"], CPP_CALL)
        self.check_values("three_groups", f)

    def test_eight_groups(self) -> None:
        f, code = self.compiled("eight_groups", "cpu")
        self.assertEqual(len(kernel_names(code)), 8)
        self.check_dispatch_tree(code, DISPATCH_TREES["eight_groups"], CPP_CALL)
        self.check_values("eight_groups", f)

    def test_merged_ranges_have_no_kernel_of_their_own(self) -> None:
        f, code = self.compiled("merged_ranges", "cpu")
        self.assertEqual(len(kernel_names(code)), 2)
        self.check_dispatch_tree(code, DISPATCH_TREES["merged_ranges"], CPP_CALL)
        self.check_values("merged_ranges", f)

    def test_single_winner_has_no_branch(self) -> None:
        f, code = self.compiled("single_winner", "cpu")
        self.assertEqual(len(kernel_names(code)), 1)
        self.check_dispatch_tree(code, DISPATCH_TREES["single_winner"], CPP_CALL)
        self.check_values("single_winner", f)

    def test_dynamic_false_has_no_branch(self) -> None:
        f, code = self.compiled("three_groups", "cpu", dynamic=False, size=1000)
        self.assertEqual(len(kernel_names(code)), 1)
        self.check_dispatch_tree(code, "k0", CPP_CALL)
        x, weight = torch.randn(2, 1000, 64), torch.randn(64)
        self.assertEqual(f(x, weight), medium_impl(x, weight))


@unittest.skipUnless(HAS_CUDA, "needs CUDA")
class TestEmittedTritonCuda(KernelTestCase):
    """Real CUDA compiles: same kernels as codegen-only, values checked."""

    def kernels(self, code: str) -> list[str]:
        sections = normalize_triton_code(code).split("\n\n")
        return [s for s in sections if s.startswith("kernel ")]

    def test_seed_cond(self) -> None:
        expected = triton_code_for(
            torch.compile(seed_dispatch, dynamic=True),
            torch.randn(2, 256, 64),
            torch.randn(64),
        )
        torch._dynamo.reset()
        f = torch.compile(seed_dispatch, dynamic=True)
        weight = torch.randn(64, device="cuda")
        x = torch.randn(2, 256, 64, device="cuda")
        _, (code,) = run_and_get_code(f, x, weight)
        self.assertEqual(self.kernels(code), self.kernels(expected))
        with torch.compiler.set_stance("fail_on_recompile"):
            for size in [256, 1024, 4096]:
                x = torch.randn(2, size, 64, device="cuda")
                self.assertEqual(f(x, weight), seed_reference(x, weight))

    @parametrize("case", list(KERNEL_CASES))
    def test_case(self, case: str) -> None:
        expected = self.triton_codegen(case)
        torch._dynamo.reset()
        f, code = self.compiled(case, "cuda")
        self.assertEqual(self.kernels(code), self.kernels(expected))
        self.assertEqual(
            wrapper_dispatch(code).count("if "), wrapper_dispatch(expected).count("if ")
        )
        split_points, winners = KERNEL_CASES[case]
        weight = torch.randn(64, device="cuda")
        with torch.compiler.set_stance("fail_on_recompile"):
            for size in self.boundary_sizes(split_points):
                x = torch.randn(2, size, 64, device="cuda")
                impl = IMPLS[expected_impl(size, split_points, winners)]
                self.assertEqual(f(x, weight), impl(x, weight), msg=f"size {size}")

    def test_dynamic_false(self) -> None:
        expected = self.triton_codegen("three_groups", dynamic=False, size=1000)
        torch._dynamo.reset()
        f, code = self.compiled("three_groups", "cuda", dynamic=False, size=1000)
        self.assertEqual(self.kernels(code), self.kernels(expected))
        self.assertNotIn("if ", wrapper_dispatch(code))
        x, weight = (
            torch.randn(2, 1000, 64, device="cuda"),
            torch.randn(64, device="cuda"),
        )
        self.assertEqual(f(x, weight), medium_impl(x, weight))


instantiate_parametrized_tests(TestEmittedTritonCuda)


if __name__ == "__main__":
    run_tests()
