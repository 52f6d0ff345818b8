"""Time a model's own GEMMs and attention with random weights, on this machine's device.

No vLLM and no checkpoint: the shapes come from the model's ``ModelSpec`` (any HF config),
split per GPU as tensor parallelism would split them. One decoder layer is timed (every layer
has the same shape) at the token counts the performance model uses; a step's time is then
``layers x layer time + LM head``. The output is a ``workload-eval-perf-profile/1`` profile
(prefill, decode and mixed points, read by ``ProfilePerfModel``) plus the raw kernel timings.
It measures the GPU side only (``includes_engine_overheads: false``): the simulator adds its
engine generation's CPU time per step and, with TP, the modelled all-reduces.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

from pydantic import ConfigDict, Field

from workload_eval.engines.sim.perf_profile import PROFILE_FORMAT
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec
from workload_eval.strict import NoBoolNumbers


class TorchGrid(NoBoolNumbers):
    """Which step shapes to time."""

    model_config = ConfigDict(extra="forbid")

    prefill_lens: list[int] = Field(default=[16, 64, 256, 1024, 2048])
    prefill_seqs: list[int] = Field(default=[1, 4])
    decode_batches: list[int] = Field(default=[1, 8, 32, 128, 256])
    decode_contexts: list[int] = Field(default=[128, 1024, 4096])  # per sequence
    mixed_prefill: list[int] = Field(default=[256, 1024])
    mixed_batches: list[int] = Field(default=[8, 64])
    mixed_context: int = Field(default=512, ge=1)
    repeats: int = Field(default=5, ge=1)


QUICK_TORCH_GRID = TorchGrid(
    prefill_lens=[8, 32],
    prefill_seqs=[1, 2],
    decode_batches=[1, 4],
    decode_contexts=[16, 64],
    mixed_prefill=[16],
    mixed_batches=[2],
    mixed_context=32,
    repeats=2,
)


class _Layer:
    """One decoder layer's weights (random) and the kernels of a forward pass over it."""

    def __init__(self, model: ModelSpec, tp: int, dtype: Any, device: str) -> None:
        import torch

        self.torch, self.dtype, self.device = torch, dtype, device
        h, hd = model.hidden_size, model.head_dim
        self.heads = model.num_heads // tp
        self.kv_heads = max(model.kv_heads // tp, 1)
        self.hd = hd
        g = torch.Generator(device="cpu").manual_seed(0)

        def w(rows: int, cols: int) -> Any:
            return (torch.randn(rows, cols, generator=g) * 0.02).to(device=device, dtype=dtype)

        self.qkv = w(h, (self.heads + 2 * self.kv_heads) * hd)
        self.o = w(self.heads * hd, h)
        moe = model.moe
        if moe is not None:  # routed experts of this GPU (TP slices) + shared experts
            ffn = max(moe.expert_ffn_size // tp, 1)
            self.experts = min(moe.num_experts, 8)  # enough distinct weights to defeat caches
            self.top_k = moe.experts_per_token
            self.num_experts = moe.num_experts
        else:
            ffn = max(model.ffn_size // tp, 1)
            self.experts, self.top_k, self.num_experts = 1, 1, 1
        mats = 2 if model.gated_ffn else 1
        self.gate_up = [w(h, mats * ffn) for _ in range(self.experts)]
        self.down = [w(ffn, h) for _ in range(self.experts)]
        self.gated = model.gated_ffn
        shared = (moe.shared_ffn_size // tp) if moe is not None else 0
        self.shared_up = w(h, mats * shared) if shared else None
        self.shared_down = w(shared, h) if shared else None
        self.norm = torch.ones(h, device=device, dtype=dtype)
        self.head = w(h, max(model.vocab_size // tp, 1))

    def _ffn(self, x: Any, up: Any, down: Any) -> Any:
        y = x @ up
        if self.gated:
            a, b = y.chunk(2, dim=-1)
            y = self.torch.nn.functional.silu(a) * b
        else:
            y = self.torch.nn.functional.gelu(y)
        return y @ down

    def linear(self, tokens: int) -> Callable[[], Any]:
        """Norms, QKV, O and the FFN (or the experts the batch touches) over ``tokens``."""
        torch = self.torch
        x = torch.randn(tokens, self.qkv.shape[0], device=self.device, dtype=self.dtype)
        touched = min(
            self.num_experts,
            max(1, round(self.num_experts * (1 - (1 - self.top_k / self.num_experts) ** tokens))),
        )
        per_expert = max(1, tokens * self.top_k // touched) if self.num_experts > 1 else tokens

        def run() -> Any:
            y = torch.nn.functional.rms_norm(x, x.shape[-1:], self.norm)
            y = y @ self.qkv
            y = y[:, : self.o.shape[0]] @ self.o
            y = torch.nn.functional.rms_norm(y + x, x.shape[-1:], self.norm)
            out = self._ffn(y[:per_expert], self.gate_up[0], self.down[0])
            for e in range(1, touched):
                out = self._ffn(
                    y[:per_expert], self.gate_up[e % self.experts], self.down[e % self.experts]
                )
            if self.shared_up is not None:
                out = self._ffn(y, self.shared_up, self.shared_down)
            return out

        return run

    def prefill_attention(self, seqs: int, length: int) -> Callable[[], Any]:
        torch = self.torch
        q = torch.randn(seqs, self.heads, length, self.hd, device=self.device, dtype=self.dtype)
        kv = torch.randn(seqs, self.kv_heads, length, self.hd, device=self.device, dtype=self.dtype)
        gqa = self.heads != self.kv_heads

        def run() -> Any:  # GQA reads each KV head once (no repeated copy), as vLLM's kernels
            return torch.nn.functional.scaled_dot_product_attention(
                q, kv, kv, is_causal=True, enable_gqa=gqa
            )

        return run

    def decode_attention(self, batch: int, context: int) -> Callable[[], Any]:
        torch = self.torch
        q = torch.randn(batch, self.heads, 1, self.hd, device=self.device, dtype=self.dtype)
        kv = torch.randn(
            batch, self.kv_heads, context, self.hd, device=self.device, dtype=self.dtype
        )
        gqa = self.heads != self.kv_heads

        def run() -> Any:
            return torch.nn.functional.scaled_dot_product_attention(q, kv, kv, enable_gqa=gqa)

        return run

    def lm_head(self, seqs: int) -> Callable[[], Any]:
        x = self.torch.randn(seqs, self.head.shape[0], device=self.device, dtype=self.dtype)
        return lambda: x @ self.head


def _timer(device: str, repeats: int) -> Callable[[Callable[[], Any]], float]:
    import torch

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def measure(fn: Callable[[], Any]) -> float:
        with torch.inference_mode():
            fn()  # warm-up (allocations, kernel selection)
            sync()
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                sync()
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    return measure


def _device_name(device: str) -> str:
    import torch

    if device == "cuda":
        return str(torch.cuda.get_device_name(0))
    return platform.processor() or platform.machine()


def profile_torch(
    model: ModelSpec,
    *,
    device: str | None = None,
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    grid: TorchGrid | None = None,
) -> dict[str, Any]:
    """Time ``model``'s kernels on ``device`` and return a perf profile (a JSON-able dict)."""
    try:
        import torch
    except ImportError:
        raise UserError("profile --engine torch needs PyTorch: pip install torch") from None
    grid = grid or TorchGrid()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no CUDA device here")
    names = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if dtype == "auto":  # the checkpoint's dtype on GPUs; fp32 on CPUs (no fast 16-bit GEMMs)
        dtype = model.torch_dtype if device == "cuda" else "float32"
        dtype = dtype if dtype in names else "float16"
    if dtype not in names:
        raise UserError(f"--dtype {dtype!r}: expected auto, {', '.join(names)}")
    if model.num_heads % tensor_parallel_size:
        raise UserError(
            f"--tensor-parallel-size {tensor_parallel_size}: does not divide "
            f"{model.num_heads} attention heads"
        )
    started = time.perf_counter()
    layer = _Layer(model, tensor_parallel_size, names[dtype], device)
    measure = _timer(device, grid.repeats)
    L = model.num_layers
    lin_cache: dict[int, float] = {}
    head_cache: dict[int, float] = {}

    def linear(tokens: int) -> float:
        if tokens not in lin_cache:
            lin_cache[tokens] = measure(layer.linear(tokens))
        return lin_cache[tokens]

    def head(seqs: int) -> float:
        if seqs not in head_cache:
            head_cache[seqs] = measure(layer.lm_head(seqs))
        return head_cache[seqs]

    kernels: dict[str, list[dict[str, float]]] = {"prefill_attention": [], "decode_attention": []}
    prefill = []
    for seqs in grid.prefill_seqs:
        for length in grid.prefill_lens:
            attn = measure(layer.prefill_attention(seqs, length))
            kernels["prefill_attention"].append({"seqs": seqs, "length": length, "time_s": attn})
            t = L * (linear(seqs * length) + attn) + head(seqs)
            prefill.append(
                {
                    "num_seqs": seqs,
                    "tokens": seqs * length,
                    "sum_sq_tokens": seqs * length**2,
                    "time_s": t,
                }
            )
    decode = []
    for b in grid.decode_batches:
        for ctx in grid.decode_contexts:
            attn = measure(layer.decode_attention(b, ctx))
            kernels["decode_attention"].append({"batch": b, "context": ctx, "time_s": attn})
            t = L * (linear(b) + attn) + head(b)
            decode.append({"batch_size": b, "context_tokens": b * ctx, "time_s": t})
    mixed = []
    for p in grid.mixed_prefill:
        pre = measure(layer.prefill_attention(1, p))
        for b in grid.mixed_batches:
            dec = measure(layer.decode_attention(b, grid.mixed_context))
            t = L * (linear(p + b) + pre + dec) + head(b + 1)
            mixed.append(
                {
                    "prefill_tokens": p,
                    "prefill_sum_sq": p * p,
                    "decode_seqs": b,
                    "decode_context_tokens": b * grid.mixed_context,
                    "time_s": t,
                }
            )
    kernels["linear_layer"] = [{"tokens": k, "time_s": v} for k, v in sorted(lin_cache.items())]
    kernels["lm_head"] = [{"seqs": k, "time_s": v} for k, v in sorted(head_cache.items())]
    return {
        "format": PROFILE_FORMAT,
        "model": model.name,
        "device": f"{device} ({_device_name(device)})",
        "engine": f"torch {torch.__version__} (kernels only)",
        "includes_engine_overheads": False,
        "tensor_parallel_size": tensor_parallel_size,
        "dtype": dtype,
        "num_layers": L,
        "measured_s": round(time.perf_counter() - started, 2),
        "grid": grid.model_dump(),
        "prefill": prefill,
        "decode": decode,
        "mixed": mixed,
        "kernels": kernels,
    }
