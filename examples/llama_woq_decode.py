"""Token-by-token decode of a Llama-architecture model whose linear layers are
int8 weight-only, their matmul one range-dispatched custom op.

The model is Hugging Face transformers' LlamaForCausalLM built from a config with
random weights (nothing is downloaded): ``--size 1b`` (hidden 2048, 16 layers,
about 1.1B parameters; a GPU) or ``--size tiny`` (hidden 64, 2 layers; the CPU
smoke test). Every nn.Linear of the decoder layers becomes an ``Int8Linear``
(int8 weight and a per-channel scale, as module buffers) computing
``example::woq_linear(x, wq, scale)``, registered with
``register_custom_op_autotuning`` over the batch (x is (batch, tokens, K)):

  on CUDA  woq_tile_16 / woq_tile_64: a user Triton kernel (torch.library.triton_op)
           that reads each int8 weight tile once for 16 / 64 rows and scales in
           its epilogue; dequant_mm: dequantize to bf16, cuBLAS mm, scale;
  on CPU   rowwise: a broadcast multiply and sum; dequant_mm as above.

Inductor times them per range of the batch (split points 4 / 16 / 64) and
dispatches between the winners at run time. Decode runs with a static KV cache
under ``torch.compile(mode="reduce-overhead")`` (CUDA graphs; plain
``torch.compile`` on CPU), the batch dynamic (``maybe_mark_dynamic`` on dim 0).
Variants, all from the same random weights:

  dispatched  the int8 model, each linear the range-dispatched op;
  dispatched_flat  the same, the op called on (batch * tokens, K) rows (a view
              after it keeps its consumers out of the branches);
  dequant_mm  the int8 model, each linear dequant + mm written inline;
  bf16        the model as built (bf16 weights; fp32 on CPU).

For each batch size: a prompt of PROMPT tokens is prefilled in eager mode, then
decode steps run compiled; the compiled step's logits are checked against the
eager step's (from a copy of the cache), then STEPS steps are timed with CUDA
events (median per-token time of ROUNDS blocks). Compile time is the first
compiled step's wall time; recompiles and CUDA-graph skips are counted.

Usage: python examples/llama_woq_decode.py [--size tiny|1b] [--batches 1,2,4]
       [--out FILE.json]
"""

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch._dynamo.utils import counters
from torch._inductor.kernel.custom_op import (
    CustomOpConfig,
    register_custom_op_autotuning,
)


SPLIT_POINTS = [4, 16, 64]
PROMPT = 8
SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
    },
    "1b": {
        "hidden_size": 2048,
        "intermediate_size": 8192,
        "num_hidden_layers": 16,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
    },
}


@torch.library.custom_op("example::woq_linear", mutates_args=())
def woq_linear(x: torch.Tensor, wq: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (..., K) @ dequantized wq (K, N) int8, times the per-column scale (N,)."""
    return dequant_mm(x, wq, scale)


@woq_linear.register_fake
def _(x, wq, scale):
    return x.new_empty(*x.shape[:-1], wq.shape[1])


def dequant_mm(x, wq, scale):
    return (x @ wq.to(x.dtype)) * scale


def rowwise(x, wq, scale):
    prod = x.unsqueeze(-1).float() * wq.float()
    return (prod.sum(-2) * scale.float()).to(x.dtype)


def triton_impls() -> list[Callable]:
    """The user Triton kernel at two tile heights (needs triton and a GPU)."""
    import triton
    import triton.language as tl
    from torch.library import triton_op, wrap_triton

    @triton.jit
    def woq_kernel(x_ptr, w_ptr, scale_ptr, out_ptr, M, N: tl.constexpr,
                   K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   BLOCK_K: tl.constexpr):  # fmt: skip
        pid_n = tl.program_id(0)
        pid_m = tl.program_id(1)
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows[:, None] < M
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            a = tl.load(x_ptr + rows[:, None] * K + ks[None, :], mask=row_ok, other=0.0)
            b = tl.load(w_ptr + ks[:, None] * N + cols[None, :])
            acc += tl.dot(a, b.to(tl.bfloat16))
        col_scale = tl.load(scale_ptr + cols).to(tl.float32)
        out = (acc * col_scale[None, :]).to(tl.bfloat16)
        tl.store(out_ptr + rows[:, None] * N + cols[None, :], out, mask=row_ok)

    @triton_op("example::woq_tile", mutates_args=())
    def woq_tile(
        x: torch.Tensor, wq: torch.Tensor, scale: torch.Tensor, block_m: int
    ) -> torch.Tensor:
        m, k = x.shape
        n = wq.shape[1]
        out = x.new_empty((m, n))
        grid = (n // 64, triton.cdiv(m, block_m))
        wrap_triton(woq_kernel)[grid](
            x, wq, scale, out, m, n, k, block_m, 64, 128, num_warps=4, num_stages=3
        )
        return out

    def tile(block_m: int) -> Callable:
        def impl(x, wq, scale):
            rows = woq_tile(x.reshape(-1, x.shape[-1]), wq, scale, block_m)
            return rows.reshape(*x.shape[:-1], -1)

        impl.__name__ = f"woq_tile_{block_m}"
        return impl

    return [tile(16), tile(64)]


def register(device: str) -> None:
    impls = [*triton_impls(), dequant_mm] if device == "cuda" else [rowwise, dequant_mm]
    register_custom_op_autotuning(
        woq_linear,
        configs=[CustomOpConfig(impl) for impl in impls],
        dispatch_on={"tensor_name": "x", "dim": 0},
        split_points=SPLIT_POINTS,
    )


class Int8Linear(torch.nn.Module):
    """A bias-free nn.Linear as an int8 weight (K, N) and a scale per output
    channel; ``dispatched`` picks the custom op, else dequant + mm inline."""

    def __init__(
        self, linear: torch.nn.Linear, dispatched: bool, flatten: bool = False
    ) -> None:
        super().__init__()
        weight = linear.weight.detach().float()  # (N, K)
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
        wq = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        self.register_buffer("wq", wq.t().contiguous())
        self.register_buffer("scale", scale.to(linear.weight.dtype))
        self.dispatched = dispatched
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, tokens, K); the dispatch is on dim 0 (the batch, one token
        # each while decoding). Without a view after the op its consumers (the
        # residual add, the next norm, the MLP's silu * up) join its branches;
        # ``flatten`` calls it on (batch * tokens, K) rows instead.
        linear = woq_linear if self.dispatched else dequant_mm
        if not self.flatten:
            return linear(x, self.wq, self.scale)
        rows = x.reshape(-1, x.shape[-1])
        return linear(rows, self.wq, self.scale).reshape(*x.shape[:-1], -1)


VARIANTS = ("dispatched", "dispatched_flat", "dequant_mm", "bf16")


def build_model(size: str, device: str, variant: str) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    config = LlamaConfig(**SIZES[size], max_position_embeddings=512)
    model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
    if variant != "bf16":
        for layer in model.model.layers:
            for parent in (layer.self_attn, layer.mlp):
                for name, child in list(parent.named_children()):
                    if isinstance(child, torch.nn.Linear):
                        int8 = Int8Linear(
                            child,
                            dispatched=variant.startswith("dispatched"),
                            flatten=variant.endswith("_flat"),
                        )
                        setattr(parent, name, int8)
    return model


def static_cache(model: torch.nn.Module, max_len: int) -> Any:
    """A StaticCache, allocated at its first update for that update's batch."""
    from transformers import StaticCache

    return StaticCache(config=model.config, max_cache_len=max_len)


def cache_tensors(cache: Any) -> list[torch.Tensor]:
    """The key and value tensors of a StaticCache, once allocated."""
    return [tensor for layer in cache.layers for tensor in (layer.keys, layer.values)]


def decode_step(model, tokens, positions, mask, cache):
    """One token per sequence; ``mask`` (batch, cache length) marks the cache
    rows written so far, as ``generate`` passes it."""
    return model(
        input_ids=tokens,
        position_ids=positions,
        cache_position=positions[0],
        attention_mask=mask,
        past_key_values=cache,
        use_cache=True,
    ).logits


def kernels_of(
    decode: Callable[[torch.Tensor], torch.Tensor], tokens: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """One more decode step, and the CUDA kernels it launched (torch.profiler)."""
    activities = [torch.profiler.ProfilerActivity.CUDA]
    with torch.profiler.profile(activities=activities) as profile:
        tokens = decode(tokens)
        torch.cuda.synchronize()
    kernels = [
        event
        for event in profile.events()
        if event.device_type == torch.autograd.DeviceType.CUDA
        and not event.name.startswith(("Memcpy", "Memset"))
    ]
    return tokens, len(kernels)


def run_variant(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    device = args.device
    model = build_model(args.size, device, variant)
    options = {"mode": "reduce-overhead"} if device == "cuda" else {}
    step = torch.compile(decode_step, **options)
    vocab = model.config.vocab_size
    max_len = PROMPT + 3 + args.rounds * args.steps + 8
    frames_before = counters["frames"]["ok"]
    skips_before = counters["inductor"]["cudagraph_skips"]
    result: dict[str, Any] = {
        "parameters": sum(t.numel() for t in [*model.parameters(), *model.buffers()]),
        "per_token_ms": {},
        "max_logit_diff": {},
    }
    generator = torch.Generator().manual_seed(1)
    for batch in args.batches:
        cache = static_cache(model, max_len)
        prompt = torch.randint(0, vocab, (batch, PROMPT), generator=generator)
        prompt = prompt.to(device)
        mask = torch.zeros(batch, max_len, dtype=torch.long, device=device)
        mask[:, :PROMPT] = 1
        with torch.no_grad():
            logits = model(
                input_ids=prompt,
                attention_mask=mask[:, :PROMPT],
                past_key_values=cache,
                cache_position=torch.arange(PROMPT, device=device),
                use_cache=True,
            ).logits
        tokens = logits[:, -1:].argmax(-1)
        position = PROMPT

        def positions_at(p: int) -> torch.Tensor:
            mask[:, p] = 1
            return torch.full((batch, 1), p, device=device, dtype=torch.long)

        def decode(tokens: torch.Tensor) -> torch.Tensor:
            """One compiled step at the next position: the next tokens."""
            nonlocal position
            logits = step(model, tokens, positions_at(position), mask, cache)
            position += 1
            return logits[:, -1:].argmax(-1)

        with torch.no_grad():
            # The first compiled step (of this batch) against the eager step
            # from the same state (a copy of the cache).
            positions = positions_at(position)
            # The batch is dynamic: the first dim of the tokens, positions, mask
            # and cache (maybe: a size of 1 is specialized all the same).
            for tensor in [tokens, positions, mask, *cache_tensors(cache)]:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
            eager = decode_step(model, tokens, positions, mask, copy.deepcopy(cache))
            start = time.perf_counter()
            compiled = step(model, tokens, positions, mask, cache).clone()
            if device == "cuda":
                torch.cuda.synchronize()
            if batch == args.batches[0]:
                result["compile_s"] = time.perf_counter() - start
            diff = (compiled.float() - eager.float()).abs().max().item()
            result["max_logit_diff"][batch] = diff
            tokens = compiled[:, -1:].argmax(-1)
            position += 1
            for _ in range(2):  # record this batch's CUDA graph, warm it up
                tokens = decode(tokens)
            samples = []
            for _ in range(args.rounds):
                if device == "cuda":
                    begin = torch.cuda.Event(enable_timing=True)
                    end = torch.cuda.Event(enable_timing=True)
                    begin.record()
                else:
                    wall = time.perf_counter()
                for _ in range(args.steps):
                    tokens = decode(tokens)
                if device == "cuda":
                    end.record()
                    end.synchronize()
                    samples.append(begin.elapsed_time(end) / args.steps)
                else:
                    samples.append((time.perf_counter() - wall) * 1e3 / args.steps)
            result["per_token_ms"][batch] = statistics.median(samples)
            kernels = ""
            if device == "cuda":
                tokens, count = kernels_of(decode, tokens)
                result.setdefault("kernels_per_token", {})[batch] = count
                kernels = f", {count} kernels"
        print(
            f"{variant:10s} batch {batch:3d}: {result['per_token_ms'][batch]:8.3f} "
            f"ms/token{kernels}, logits max |compiled - eager| {diff:.3g}",
            flush=True,
        )
    result["compiles"] = counters["frames"]["ok"] - frames_before
    result["cudagraph_skips"] = counters["inductor"]["cudagraph_skips"] - skips_before
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--batches", default="1,2,4,8,16,32,64")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=None)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    args.batches = [int(b) for b in args.batches.split(",")]
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(
            f"--variants: unknown {sorted(unknown)}; valid: {', '.join(VARIANTS)}"
        )
    try:
        import transformers
    except ImportError:
        print("llama_woq_decode.py needs transformers (pip install "
              "transformers==5.17.0)", file=sys.stderr)  # fmt: skip
        return 3
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(
        f"{device_name}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, Llama {args.size}",
        flush=True,
    )
    register(args.device)
    results = {variant: run_variant(args, variant) for variant in variants}
    # Logits close: bf16 on the GPU, fp32 on CPU.
    tolerance = args.tolerance or (0.25 if args.device == "cuda" else 1e-3)
    failed = [
        f"{variant} batch {batch}: {diff:.3g}"
        for variant, result in results.items()
        for batch, diff in result["max_logit_diff"].items()
        if diff > tolerance
    ]
    for variant, result in results.items():
        print(
            f"{variant}: compile {result['compile_s']:.1f} s, "
            f"{result['compiles']} compiles, "
            f"{result['cudagraph_skips']} CUDA-graph skips"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "device": device_name,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "size": args.size,
                    "results": results,
                },
                f,
                indent=1,
            )
    if failed:
        print(f"logits differ from eager beyond {tolerance}: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
