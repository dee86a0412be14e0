# mypy: ignore-errors
"""Emit Inductor's Triton code on a machine without a GPU, and normalize it for tests.

``codegen_only_triton()`` makes Inductor compile CPU graphs with its Triton backend
against a stand-in CUDA target (sm90, warp size 32), and stops each graph right after
code generation: the wrapper source (with every kernel's source in it) is kept,
nothing is compiled or run. Kernels come out as they would for an H100, because
Inductor's Triton codegen only asks the driver for the target.

``normalize_triton_code()`` reduces such a wrapper to what a reviewer checks: each
kernel's name, signature and body, and the host-side dispatch of every wrapper
function (``if``/``else`` nesting, which subgraph each branch calls, which kernel
runs). It drops what changes from run to run or machine to machine: cache paths,
backend hashes, device properties, ``triton_meta``/``inductor_meta``, stream and
device-guard lines, size asserts and buffer bookkeeping. The same normalization
applies to code from a real CUDA compile, so both can be compared.
"""

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import torch


__all__ = [
    "CodegenOnlyUnavailable",
    "codegen_only_triton",
    "kernel_names",
    "normalize_triton_code",
    "triton_code_for",
    "wrapper_dispatch",
]

# The stand-in target: what an H100 reports.
_TARGET = ("cuda", 90, 32)


class CodegenOnlyUnavailable(RuntimeError):
    """Raised when this torch/Triton pair cannot emit Triton code without a GPU."""


class _StopAfterCodegen(Exception):
    """Raised in place of compiling a graph once its code is captured."""


class _CodegenOnlyDriver:
    """The part of a Triton driver that Inductor's codegen queries."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def get_current_target(self) -> Any:
        return self._target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: Any = None) -> int:
        return 0

    def is_active(self) -> bool:
        return True


def _requirements() -> tuple[Any, Any]:
    """The Triton driver registry and GPUTarget, or a clear error saying why not."""
    try:
        import triton
        from triton.backends.compiler import GPUTarget
    except ImportError as e:
        raise CodegenOnlyUnavailable(
            f"codegen-only Triton needs the triton package ({e})"
        ) from e
    driver = getattr(getattr(triton, "runtime", None), "driver", None)
    if driver is None or not hasattr(driver, "_active"):
        raise CodegenOnlyUnavailable(
            f"triton {triton.__version__} has no triton.runtime.driver._active; "
            "codegen-only Triton was written for triton 3.x"
        )
    from torch._inductor.graph import GraphLowering

    if not hasattr(GraphLowering, "codegen") or not hasattr(
        GraphLowering, "compile_to_module"
    ):
        raise CodegenOnlyUnavailable(
            f"torch {torch.__version__}: GraphLowering lacks codegen/compile_to_module"
        )
    return driver, GPUTarget


@contextlib.contextmanager
def codegen_only_triton() -> Iterator[list[str]]:
    """Inside this context, Inductor emits Triton code for CPU graphs and stops.

    Yields a list that receives the wrapper source of every graph compiled inside.
    Each compile then fails with an ``InductorError`` (nothing is compiled, so
    there is nothing to run): call the compiled function through
    ``triton_code_for`` or catch the error. Benchmarking cannot run here either, so
    autotuning must be left with one choice (e.g. through
    ``test_configs.autotune_choice_name_regex``). The previous Triton driver and
    Inductor config are restored on exit.
    """
    from torch._inductor import config as inductor_config
    from torch._inductor.graph import GraphLowering

    driver, gpu_target = _requirements()
    codes: list[str] = []

    def compile_to_module(self: GraphLowering) -> Any:
        wrapper_code, _ = self.codegen()
        codes.append(wrapper_code.value)
        raise _StopAfterCodegen(self.name)

    # Read the private slot: the public `active` property would create the
    # default driver, which fails on a machine without a GPU.
    previous = driver._active
    driver.set_active(_CodegenOnlyDriver(gpu_target(*_TARGET)))
    try:
        with (
            inductor_config.patch(cpu_backend="triton", force_disable_caches=True),
            mock.patch.object(GraphLowering, "compile_to_module", compile_to_module),
        ):
            yield codes
    finally:
        driver._active = previous


def triton_code_for(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The Triton wrapper source that compiling ``fn(*args, **kwargs)`` emits.

    ``fn`` is typically a ``torch.compile``-d function of CPU tensors; its last
    compiled graph is returned.
    """
    with codegen_only_triton() as codes:
        try:
            fn(*args, **kwargs)
        except Exception as e:
            if not _stopped_after_codegen(e):
                raise
    if not codes:
        raise AssertionError("no graph was compiled (was fn already compiled?)")
    return codes[-1]


def _stopped_after_codegen(error: BaseException) -> bool:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, _StopAfterCodegen):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


# ---------------------------------------------------------------- normalization

_KERNEL_DEF = re.compile(
    r"^(\w+) = async_compile\.triton\('(\w+)', '''\n(.*?)\n''', device_str='\w+'\)",
    re.DOTALL | re.MULTILINE,
)
_WRAPPER_HEAD = re.compile(r"^( *)def (\w+)\((?:self, )?args\):$")

# Wrapper lines that carry no dispatch information.
_DROPPED_WRAPPER_LINE = re.compile(
    r"""^(
        .*\ =\ args | args\.clear\(\) | del\ .* | pass |
        assert_size_stride(_grouped)?\(.* | assert_alignment\(.* |
        \w+_size\ =\ \w+\.size\(\) | \w+_stride\ =\ \w+\.stride\(\) |
        s\d+\ =\ \w+(_(size|stride)\[\d+\])? |
        \w+_arg\d+_1\ =\ \w+ |
        \w+\ =\ empty_strided_\w+\(.* | \w+\ =\ \[None\]\ \*\ \d+ |
        \w+_args\ =\ \[.*\] |
        with\ torch\.\w+\._DeviceGuard\(.* | torch\.\w+\.set_device\(.* |
        (raw_)?stream\w+\ =\ get_raw_stream\(.* |
        \#(?!\ subgraph:).*
    )$""",
    re.VERBOSE,
)


def _kernel_sections(code: str) -> list[str]:
    sections = []
    for match in _KERNEL_DEF.finditer(code):
        name, body = match.group(2), match.group(3)
        jit = body.find("@triton.jit\n")
        if jit < 0:
            continue
        source = body[jit + len("@triton.jit\n") :].rstrip()
        sections.append(f"kernel {name}:\n{source}")
    return sections


def _wrapper_functions(code: str) -> Iterator[tuple[str, list[str]]]:
    """(name, body lines) of every ``def NAME(args)`` / ``def call(self, args)``."""
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        head = _WRAPPER_HEAD.match(lines[i])
        i += 1
        if not head:
            continue
        indent = len(head.group(1))
        body = []
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            body.append(lines[i])
            i += 1
        yield head.group(2), body


def _wrapper_sections(code: str) -> list[str]:
    sections = []
    for name, body in _wrapper_functions(code):
        kept = []
        for line in body:
            stripped = line.strip()
            if not stripped or _DROPPED_WRAPPER_LINE.match(stripped):
                continue
            stripped = re.sub(r",\s*stream=(raw_)?stream\w+", "", stripped)
            kept.append((len(line) - len(line.lstrip()), stripped))
        sections.append(f"def {name}(args):\n" + "\n".join(_reindent(kept)))
    return sections


def _reindent(kept: list[tuple[int, str]]) -> list[str]:
    """Re-indent by nesting depth of if/else only (drops device-guard indentation)."""
    lines = []
    stack: list[int] = []  # indents of the open if/else blocks
    for indent, text in kept:
        while stack and indent <= stack[-1]:
            stack.pop()
        lines.append("    " * (len(stack) + 1) + text)
        if text.startswith(("if ", "else", "elif ")) and text.endswith(":"):
            stack.append(indent)
    return lines


def normalize_triton_code(code: str) -> str:
    """Kernels (name, signature, body) and wrapper dispatch structure, in order."""
    return "\n\n".join(_kernel_sections(code) + _wrapper_sections(code)) + "\n"


_KERNEL_NAME = re.compile(
    r"^(\w+) = async_compile\.(?:triton|cpp_pybinding|cpp)\(", re.MULTILINE
)


def kernel_names(code: str) -> list[str]:
    """Names of the kernels (Triton or C++) defined in a wrapper, in order."""
    return _KERNEL_NAME.findall(code)


def wrapper_dispatch(code: str) -> str:
    """The host-side dispatch of every wrapper function, for any backend."""
    return "\n\n".join(_wrapper_sections(code)) + "\n"
