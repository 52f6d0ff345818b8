"""``workload-eval profile``: time a real engine's steps into a profile the simulator reads.

``--engine vllm`` times whole engine steps of an in-process vLLM; ``--engine torch`` times the
model's own GEMMs and attention with random weights (no vLLM, no checkpoint: any model the
catalog or a config.json describes) on this machine's CPU or GPU.
"""

from __future__ import annotations

import click

from workload_eval.errors import UserError


@click.command(name="profile")
@click.option(
    "--engine",
    type=click.Choice(["vllm", "torch"]),
    default="vllm",
    show_default=True,
    help="vllm: whole engine steps in-process; torch: the model's kernels, random weights.",
)
@click.option(
    "--model",
    required=True,
    help="Model folder (e.g. from `models tiny`) or hub id; for torch also a catalog name "
    "or a config.json.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "cuda"]),
    default=None,
    help="Expected device; checked against the installed vLLM build.",
)
@click.option("--block-size", type=int, default=None, help="KV block size (CPU: multiple of 32).")
@click.option("--max-model-len", type=int, default=1024, show_default=True)
@click.option("--max-num-batched-tokens", type=int, default=2048, show_default=True)
@click.option(
    "--kv-blocks",
    type=int,
    default=4096,
    show_default=True,
    help="KV blocks to allocate (enough for the largest decode batch).",
)
@click.option("--dtype", default="auto", show_default=True)
@click.option(
    "--tensor-parallel-size",
    type=int,
    default=1,
    show_default=True,
    help="torch: time one GPU's share of a TP group (heads and FFN split).",
)
@click.option(
    "--repeats", type=int, default=3, show_default=True, help="Repeats per point (median)."
)
@click.option(
    "--grid",
    type=click.Choice(["default", "quick"]),
    default="default",
    show_default=True,
    help="quick: a handful of points (smoke tests), seconds.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    required=True,
    help="Where to write the profile JSON.",
)
def command(
    engine: str,
    model: str,
    device: str | None,
    block_size: int | None,
    max_model_len: int,
    max_num_batched_tokens: int,
    kv_blocks: int,
    dtype: str,
    tensor_parallel_size: int,
    repeats: int,
    grid: str,
    out_path: str,
) -> None:
    """Measure step times over prefill sizes, decode batch/context sizes and mixed steps."""
    from workload_eval.engines.base import EngineConfig
    from workload_eval.engines.vllm.profiling import (
        QUICK_GRID,
        ProfileGrid,
        profile_vllm,
        write_profile,
    )
    from workload_eval.engines.vllm.setup import require_vllm

    if repeats < 1:
        raise UserError(f"--repeats {repeats}: expected at least 1")
    if engine == "torch":
        _profile_torch(model, device, dtype, tensor_parallel_size, repeats, grid, out_path)
        return
    require_vllm("profile --engine vllm")  # the CPU KV space is set from --kv-blocks
    fields: dict = {
        "model": model,
        "max_model_len": max_model_len,
        "kv_blocks": kv_blocks,
        "max_num_batched_tokens": max_num_batched_tokens,
        "options": {"dtype": dtype, **({"device": device} if device else {})},
    }
    if block_size is not None:
        fields["block_size"] = block_size
    try:
        config = EngineConfig(**fields)
    except ValueError as e:
        raise UserError(f"profile: {str(e).splitlines()[-1].strip()}") from None
    points = QUICK_GRID if grid == "quick" else ProfileGrid(repeats=repeats)
    profile = profile_vllm(config, points, progress=True)
    path = write_profile(profile, out_path)
    click.echo(
        f"wrote {path}: {len(profile['prefill'])} prefill, {len(profile['decode'])} decode, "
        f"{len(profile['mixed'])} mixed points ({profile['device']}, {profile['measured_s']} s)"
    )


def _profile_torch(
    model: str,
    device: str | None,
    dtype: str,
    tensor_parallel_size: int,
    repeats: int,
    grid: str,
    out_path: str,
) -> None:
    from workload_eval.engines.vllm.profiling import write_profile
    from workload_eval.models import resolve_model
    from workload_eval.profiling_torch import QUICK_TORCH_GRID, TorchGrid, profile_torch

    if tensor_parallel_size < 1:
        raise UserError(f"--tensor-parallel-size {tensor_parallel_size}: expected at least 1")
    spec = resolve_model(model)
    points = QUICK_TORCH_GRID if grid == "quick" else TorchGrid(repeats=repeats)
    profile = profile_torch(
        spec, device=device, dtype=dtype, tensor_parallel_size=tensor_parallel_size, grid=points
    )
    path = write_profile(profile, out_path)
    click.echo(
        f"wrote {path}: {len(profile['prefill'])} prefill, {len(profile['decode'])} decode, "
        f"{len(profile['mixed'])} mixed points ({profile['device']}, {profile['engine']}, "
        f"{profile['measured_s']} s)"
    )
