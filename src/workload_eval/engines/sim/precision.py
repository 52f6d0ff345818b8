"""Number formats of one deployment: weight bytes, KV-cache bytes and the GEMM tensor-core rate.

vLLM takes the weight format from the checkpoint (``quantization_config``) unless
``--quantization`` overrides it (``fp8`` quantizes a 16-bit checkpoint on the fly), the
activation dtype from ``--dtype`` (``auto``: the checkpoint's), and the KV-cache format from
``--kv-cache-dtype`` (``auto``: the activation dtype; ``fp8``/``fp8_e4m3``/``fp8_e5m2``: 1 byte).
"""

from __future__ import annotations

from dataclasses import dataclass

from workload_eval.engines.sim.hardware import ComputeFormat, GpuSpec
from workload_eval.errors import UserError
from workload_eval.models import QUANT_WEIGHT_BITS, ModelSpec, quantization_of

DTYPE_BYTES = {
    "auto": None,
    "float16": 2,
    "half": 2,
    "fp16": 2,
    "bfloat16": 2,
    "bf16": 2,
    "float32": 4,
    "float": 4,
    "fp32": 4,
}
KV_DTYPE_BYTES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "fp8_inc": 1}
# Weight formats whose GEMMs run on the matching low-precision tensor cores (W8A8 / W4A4)
# where the GPU has them; int4 (AWQ/GPTQ), mxfp4 and bitsandbytes are weight-only: 16-bit GEMMs.
_COMPUTE: dict[str, ComputeFormat] = {"fp8": "fp8", "int8": "int8", "fp4": "fp4"}
# bitsandbytes has no fused dequantizing GEMM for batches > 1: it writes a 16-bit copy of each
# weight and multiplies that, so a step moves the packed weight plus 2 x 16 bits per weight
# (bitsandbytes functional.dequantize_4bit + torch.matmul).
_DEQUANT_EXTRA_BITS = {"bnb4": 32.0, "bnb8": 32.0}
# vLLM --quantization values that only say "read the checkpoint's own format".
_FROM_CHECKPOINT = {"compressed-tensors", "modelopt", "auto", "none"}


@dataclass(frozen=True)
class Precision:
    """Bytes per weight / activation / KV element and which tensor-core rate GEMMs use."""

    weight_bits: float  # stored per quantizable (linear-layer) weight
    act_bytes: int  # activations, embeddings, LM head, norms
    kv_bytes: int  # per KV-cache element
    compute: ComputeFormat
    weight_format: str  # "bf16", "fp16", or a quantization name
    weight_read_bits: float = 0.0  # moved per weight per step (0: weight_bits)

    @property
    def read_bits(self) -> float:
        return self.weight_read_bits or self.weight_bits

    @property
    def label(self) -> str:
        kv = "fp8" if self.kv_bytes == 1 else f"{8 * self.kv_bytes}-bit"
        return f"weights {self.weight_format}, KV cache {kv}"


def resolve_precision(
    model: ModelSpec,
    gpu: GpuSpec,
    *,
    dtype: str | None = None,
    quantization: str | None = None,
    kv_cache_dtype: str | None = None,
) -> Precision:
    """The formats vLLM would run ``model`` with on ``gpu`` given its engine arguments."""
    key = (dtype or "auto").lower()
    if key not in DTYPE_BYTES:
        raise UserError(f"dtype {dtype!r}: expected one of {', '.join(DTYPE_BYTES)}")
    act = DTYPE_BYTES[key] or model.dtype_bytes
    kv_key = (kv_cache_dtype or "auto").lower()
    if kv_key not in KV_DTYPE_BYTES:
        raise UserError(
            f"kv_cache_dtype {kv_cache_dtype!r}: expected one of {', '.join(KV_DTYPE_BYTES)}"
        )
    kv = KV_DTYPE_BYTES[kv_key] or act
    fmt = model.quantization
    if quantization and quantization.lower() not in _FROM_CHECKPOINT:
        fmt = quantization_of(quantization)
        if fmt is None:
            raise UserError(
                f"quantization {quantization!r}: expected one of "
                f"{', '.join(QUANT_WEIGHT_BITS)} (or a method such as awq, gptq, bitsandbytes)"
            )
    if fmt is None:
        name = "bf16" if "bfloat16" in (model.torch_dtype, key) else f"{8 * act}-bit"
        if act == 2 and name != "bf16":
            name = "fp16"
        return Precision(8.0 * act, act, kv, "fp16", name)
    compute = _COMPUTE.get(fmt, "fp16")
    if gpu.tensor_flops(compute) == gpu.peak_flops:
        compute = "fp16"  # no such tensor cores: weight-only, 16-bit GEMMs
    bits = QUANT_WEIGHT_BITS[fmt]
    return Precision(bits, act, kv, compute, fmt, bits + _DEQUANT_EXTRA_BITS.get(fmt, 0.0))
