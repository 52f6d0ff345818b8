"""GPU catalog: datasheet facts per accelerator, each entry with its source.

Bandwidths and FLOP/s are the vendors' datasheet numbers, dense (no 2:4 sparsity).
``memory_bytes`` is the total the CUDA/ROCm runtime reports (``torch.cuda.mem_get_info()[1]``),
which is what vLLM multiplies by ``gpu_memory_utilization``; it is somewhat below the marketing
capacity. Where a vLLM log line ``total_gpu_memory (X GiB)`` was found it is quoted; otherwise
the ratio runtime/nvidia-smi total of the same memory type is applied and marked "estimated".
The interconnect is what tensor parallelism's all-reduce travels over: NVLink (per-direction
bandwidth per GPU through NVSwitch), AMD Infinity Fabric, or PCIe for cards without either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from workload_eval.errors import UserError

MIB = 1024**2
GIB = 1024**3
ComputeFormat = Literal["fp16", "fp8", "int8", "fp4"]


@dataclass(frozen=True)
class Interconnect:
    """The link a GPU's collectives use: per-direction bandwidth and the kind of hop."""

    kind: Literal["nvlink", "xgmi", "pcie"]
    bandwidth: float  # bytes/s per direction per GPU, datasheet
    description: str


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator: what the performance model and the KV sizing need."""

    name: str
    memory_bytes: int  # total as the runtime reports it
    hbm_bandwidth: float  # bytes/s, datasheet
    peak_flops: float  # dense fp16/bf16 tensor FLOP/s, datasheet
    description: str = ""
    aliases: tuple[str, ...] = field(default=())
    fp8_flops: float | None = None  # dense fp8 tensor FLOP/s; None: no fp8 tensor cores
    int8_ops: float | None = None
    fp4_flops: float | None = None
    interconnect: Interconnect | None = None
    architecture: str = ""  # ampere | ada | hopper | blackwell | cdna3
    source: str = ""

    def tensor_flops(self, fmt: ComputeFormat) -> float:
        """Dense tensor-core rate for GEMMs in ``fmt``; 16-bit where the GPU lacks the format.

        Without fp8 (or fp4) tensor cores vLLM runs such checkpoints weight-only (Marlin):
        weights are dequantized to 16-bit and multiplied at the 16-bit rate.
        """
        rate = {"fp8": self.fp8_flops, "int8": self.int8_ops, "fp4": self.fp4_flops}.get(fmt)
        return rate or self.peak_flops

    @property
    def link(self) -> Interconnect:
        return self.interconnect or PCIE4


PCIE4 = Interconnect("pcie", 32e9, "PCIe 4.0 x16: 32 GB/s per direction")
PCIE5 = Interconnect("pcie", 64e9, "PCIe 5.0 x16: 64 GB/s per direction")
NVLINK3 = Interconnect("nvlink", 300e9, "NVLink 3 (A100): 600 GB/s bidirectional per GPU")
NVLINK4 = Interconnect("nvlink", 450e9, "NVLink 4 (H100/H200): 900 GB/s bidirectional per GPU")
NVLINK5 = Interconnect("nvlink", 900e9, "NVLink 5 (B200): 1.8 TB/s bidirectional per GPU")
XGMI3 = Interconnect(
    "xgmi", 448e9, "Infinity Fabric (MI300X): 7 links x 64 GB/s per direction, full mesh"
)

_NV = "https://www.nvidia.com/en-us/data-center"
GPUS: dict[str, GpuSpec] = {
    g.name: g
    for g in [
        # 39.39 GiB, the "total capacity" PyTorch reports on A100 40GB boards; the only
        # totals (40249..40411 MiB) consistent with all five kv_blocks/utilization pairs of
        # the paper's calibration (docs/simulator-accuracy.md). Kept exact.
        GpuSpec(
            "a100-40gb",
            40335 * MIB,
            1555e9,
            312e12,
            "NVIDIA A100 40GB SXM",
            ("a100", "a100-40g", "a100-sxm4-40gb", "a100_40gb"),
            int8_ops=624e12,
            interconnect=NVLINK3,
            architecture="ampere",
            source=f"{_NV}/a100/ (datasheet: 1,555 GB/s, BF16 312 TFLOPS dense)",
        ),
        # 79.15 GiB reported by PyTorch on an A100-SXM4-80GB.
        GpuSpec(
            "a100-80gb",
            81050 * MIB,
            2039e9,
            312e12,
            "NVIDIA A100 80GB SXM",
            ("a100-80g", "a100-sxm4-80gb", "a100_80gb", "a100-80gb-sxm", "a100-sxm-80gb"),
            int8_ops=624e12,
            interconnect=NVLINK3,
            architecture="ampere",
            source=f"{_NV}/a100/ (datasheet: 2,039 GB/s, BF16 312 TFLOPS dense)",
        ),
        # Estimated as the SXM board's total; PCIe 4.0, no NVLink in a typical server.
        GpuSpec(
            "a100-80gb-pcie",
            81050 * MIB,
            1935e9,
            312e12,
            "NVIDIA A100 80GB PCIe",
            ("a100-pcie-80gb", "a100-80gb-pcie4"),
            int8_ops=624e12,
            interconnect=PCIE4,
            architecture="ampere",
            source=f"{_NV}/a100/ (datasheet, PCIe: 1,935 GB/s, BF16 312 TFLOPS dense)",
        ),
        # 79.11 GiB: vLLM's "total_gpu_memory (79.11GiB)" on an H100 80GB HBM3 (SXM).
        # "h100" (80 GB, form factor not stated) resolves here: cloud H100 instances that
        # serve with tensor parallelism (GKE a3, AWS p5, Azure ND H100 v5) are SXM, and the
        # calibration's "h100" runs decode Llama-3.1-8B at 7.1 ms/token, which needs more than
        # the PCIe card's 2.0 TB/s.
        GpuSpec(
            "h100-sxm",
            81008 * MIB,
            3350e9,
            989.4e12,
            "NVIDIA H100 80GB SXM",
            ("h100", "h100-80gb", "h100_80gb", "h100-sxm5", "h100-80gb-hbm3", "h100-sxm-80gb"),
            fp8_flops=1978.9e12,
            int8_ops=1978.9e12,
            interconnect=NVLINK4,
            architecture="hopper",
            source=f"{_NV}/h100/ (datasheet, SXM: 3.35 TB/s, BF16 989 / FP8 1,979 TFLOPS dense)",
        ),
        # Same HBM capacity as SXM; estimated as the SXM total.
        GpuSpec(
            "h100-pcie",
            81008 * MIB,
            2000e9,
            756.5e12,
            "NVIDIA H100 80GB PCIe",
            ("h100-pcie-80gb", "h100_pcie"),
            fp8_flops=1513e12,
            int8_ops=1513e12,
            interconnect=PCIE5,
            architecture="hopper",
            source=f"{_NV}/h100/ (datasheet, PCIe: 2.0 TB/s, BF16 756 / FP8 1,513 TFLOPS dense)",
        ),
        # Estimated: 95,830 MiB shown by nvidia-smi x 0.993; NVLink bridges join pairs only,
        # so collectives of more than two cards go over PCIe 5.0.
        GpuSpec(
            "h100-nvl",
            95160 * MIB,
            3900e9,
            835e12,
            "NVIDIA H100 NVL 94GB",
            ("h100-94gb", "h100-nvl-94gb"),
            fp8_flops=1670e12,
            int8_ops=1670e12,
            interconnect=PCIE5,
            architecture="hopper",
            source=f"{_NV}/h100/ (datasheet, H100 NVL: 94 GB, 3.9 TB/s, BF16 835 / FP8 1,670 "
            "TFLOPS dense)",
        ),
        # 139.81 GiB: vLLM's "total_gpu_memory (139.81GiB)" on an H200.
        GpuSpec(
            "h200",
            143165 * MIB,
            4800e9,
            989.4e12,
            "NVIDIA H200 141GB SXM",
            ("h200-141gb", "h200-sxm"),
            fp8_flops=1978.9e12,
            int8_ops=1978.9e12,
            interconnect=NVLINK4,
            architecture="hopper",
            source=f"{_NV}/h200/ (datasheet: 141 GB, 4.8 TB/s, BF16 989 / FP8 1,979 TFLOPS)",
        ),
        # Estimated: 183,359 MiB shown by nvidia-smi on HGX B200 x 0.993 (the H100 ratio).
        GpuSpec(
            "b200",
            182076 * MIB,
            7700e9,
            2250e12,
            "NVIDIA B200 180GB (HGX)",
            ("b200-180gb", "hgx-b200", "dgx-b200"),
            fp8_flops=4500e12,
            int8_ops=4500e12,
            fp4_flops=9000e12,
            interconnect=NVLINK5,
            architecture="blackwell",
            source=f"{_NV}/hgx/ (HGX B200 per GPU: 180 GB HBM3e, 7.7 TB/s, FP16 2.25 / "
            "FP8 4.5 / FP4 9 PFLOPS dense)",
        ),
        # 44.39 GiB: vLLM's "total_gpu_memory (44.39GiB)" on an L40S.
        GpuSpec(
            "l40s",
            45455 * MIB,
            864e9,
            362.05e12,
            "NVIDIA L40S 48GB",
            ("l40s-48gb",),
            fp8_flops=733e12,
            int8_ops=733e12,
            interconnect=PCIE4,
            architecture="ada",
            source=f"{_NV}/l40s/ (datasheet: 864 GB/s, BF16 362 / FP8 733 TFLOPS dense)",
        ),
        # Estimated: 23,034 MiB shown by nvidia-smi x 0.98.
        GpuSpec(
            "l4",
            22480 * MIB,
            300e9,
            121e12,
            "NVIDIA L4 24GB",
            ("l4-24gb",),
            fp8_flops=242.5e12,
            int8_ops=242.5e12,
            interconnect=PCIE4,
            architecture="ada",
            source=f"{_NV}/l4/ (datasheet: 300 GB/s, BF16 121 / FP8 242.5 TFLOPS dense)",
        ),
        # 23.65 GiB: vLLM's "total_gpu_memory (23.65GiB)" on a 24 GB GeForce card.
        # GeForce tensor cores run 16-bit GEMMs with fp32 accumulation at half rate
        # (165 of 330 TFLOPS); PyTorch/vLLM accumulate in fp32. No NVLink, no P2P.
        GpuSpec(
            "rtx-4090",
            24218 * MIB,
            1008e9,
            165.2e12,
            "NVIDIA GeForce RTX 4090 24GB",
            ("4090", "rtx4090", "geforce-rtx-4090"),
            fp8_flops=330.3e12,
            int8_ops=660.6e12,
            interconnect=PCIE4,
            architecture="ada",
            source="https://images.nvidia.com/aem-dam/Solutions/geforce/ada/"
            "nvidia-ada-gpu-architecture.pdf (Ada whitepaper, RTX 4090: 1,008 GB/s, "
            "FP16 w/ FP32 acc 165.2, FP8 w/ FP32 acc 330.3 TFLOPS dense)",
        ),
        # Estimated: 97,887 MiB shown by nvidia-smi x 0.99. Blackwell workstation/server
        # card: GDDR7, no NVLink; 16-bit dense rate = 1/8 of the 4 PFLOPS sparse FP4 figure.
        GpuSpec(
            "rtx-pro-6000",
            96908 * MIB,
            1792e9,
            503.8e12,
            "NVIDIA RTX PRO 6000 Blackwell 96GB",
            ("rtx-pro-6000-blackwell", "rtx-pro-6000-server", "rtx-6000-pro"),
            fp8_flops=1007.6e12,
            int8_ops=1007.6e12,
            fp4_flops=2015.2e12,
            interconnect=PCIE5,
            architecture="blackwell",
            source="https://www.nvidia.com/en-us/products/workstations/professional-desktop-"
            "gpus/rtx-pro-6000/ (datasheet: 96 GB GDDR7, 1,792 GB/s, 4,000 AI TOPS FP4 sparse)",
        ),
        # 191.45 GiB: vLLM's "total_gpu_memory (191.45GiB)" on an MI300X.
        GpuSpec(
            "mi300x",
            196045 * MIB,
            5300e9,
            1307.4e12,
            "AMD Instinct MI300X 192GB",
            ("amd-mi300x", "mi300x-192gb"),
            fp8_flops=2614.9e12,
            int8_ops=2614.9e12,
            interconnect=XGMI3,
            architecture="cdna3",
            source="https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html "
            "(datasheet: 192 GB HBM3, 5.3 TB/s, FP16 1,307.4 / FP8 2,614.9 TFLOPS dense, "
            "896 GB/s aggregate Infinity Fabric)",
        ),
    ]
}


def known_gpus() -> list[str]:
    return sorted(GPUS)


_VENDOR_PREFIXES = ("nvidia-", "amd-", "instinct-", "geforce-", "tesla-")


def _normalize(name: str) -> str:
    key = "-".join(name.strip().lower().replace("_", " ").replace("-", " ").split())
    for prefix in _VENDOR_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _lookup(key: str) -> GpuSpec | None:
    for g in GPUS.values():
        if key == g.name or key in (_normalize(a) for a in g.aliases):
            return g
    return None


def resolve_gpu(name: str, memory_gb: float | None = None) -> GpuSpec:
    """A catalog name or alias (case, ``_``/``-`` and vendor prefixes ignored).

    ``memory_gb`` (a corpus's ``gpu_memory_gb``) picks the variant of that size when the name
    leaves it open (``a100`` with 80 GB is the 80 GB board).
    """
    key = _normalize(name)
    spec = _lookup(key)
    if memory_gb and (spec is None or abs(spec.memory_bytes / 1e9 - memory_gb) > 0.15 * memory_gb):
        sized = _lookup(f"{key}-{round(memory_gb)}gb")
        if sized is not None:
            spec = sized
    if spec is None:
        raise UserError(f"unknown GPU {name!r}: expected one of {', '.join(known_gpus())}")
    return spec
