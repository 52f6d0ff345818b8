"""Options shared by the commands that run an engine (`run`, `capacity`): one definition each."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from workload_eval import limits
from workload_eval.engines.base import EngineConfig
from workload_eval.errors import UserError

_DEFAULTS = {name: field.default for name, field in EngineConfig.model_fields.items()}


def _stack(*options: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Apply click options so that --help lists them in the order given."""

    def decorate(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


target_options = _stack(
    click.option("--engine", default="sim", show_default=True, help="sim | vllm | openai."),
    click.option("--model", required=True, help="Model name, hub id or config.json path."),
    click.option("--gpu", default=_DEFAULTS["gpu"], show_default=True, help="GPU (sim)."),
    click.option("--kv-blocks", type=int, help="KV-cache blocks (exact)."),
    click.option("--gpu-memory-utilization", type=float, help="Or: KV size from GPU memory share."),
    click.option(
        "--workload",
        required=True,
        help="Workload: a name (see `workloads list`), a workload file (.yaml/.json), an inline "
        "spec (synthetic:prompt_tokens=512,output_tokens=256) or a lengths/trace file.",
    ),
)

engine_shape_options = _stack(
    *(
        click.option(
            f"--{name.replace('_', '-')}", type=int, default=_DEFAULTS[name], show_default=True
        )
        for name in ("block_size", "max_num_batched_tokens", "max_num_seqs", "max_model_len")
    ),
    click.option(
        "--policy",
        type=click.Choice(["vllm-0.2", "vllm-v0", "vllm-v1"]),
        default=_DEFAULTS["policy"],
        show_default=True,
        help="Sim scheduler policy: vLLM 0.2 (the paper), V0 (0.3-0.10), V1 (0.8+).",
    ),
)

workload_source_options = _stack(
    click.option(
        "--workload-source",
        type=click.Choice(["auto", "hub", "local", "profile"]),
        default="auto",
        show_default=True,
    ),
    click.option("--data-dir", help="Datasets folder (else $WORKLOAD_EVAL_DATA_DIR)."),
    click.option("--tokenizer-dir", help="Tokenizers folder (else $WORKLOAD_EVAL_TOKENIZER_DIR)."),
    click.option(
        "--output-len-model",
        metavar="MODEL",
        help="Output lengths: reference (the data's, default), eos:TOKENS (stop at EOS so "
        "prompt + output averages TOKENS) or recorded:RUN_DIR (what a run generated).",
    ),
    click.option(
        "--ignore-eos/--no-ignore-eos",
        default=None,
        help="vllm/openai: --no-ignore-eos stops at EOS and records what the model generated "
        "[default: ignore EOS, outputs follow the workload].",
    ),
)


def ignore_eos_option(o: dict[str, Any]) -> dict[str, Any]:
    """The engine option --no-ignore-eos sets (real engines only)."""
    if o.get("ignore_eos") is None:
        return {}
    if o["engine"] == "sim":
        raise UserError(
            "--no-ignore-eos: the sim generates the workload's output lengths; use "
            "--output-len-model eos:TOKENS or recorded:RUN_DIR"
        )
    return {"ignore_eos": bool(o["ignore_eos"])}


max_requests_option = click.option(
    "--max-requests",
    type=int,
    help=f"Allow runs of up to N requests (default {limits.MAX_REQUESTS.default:,}: "
    "a guard against typos that would exhaust memory).",
)


def check_kv_size(o: dict[str, Any]) -> None:
    """Exactly one way to size the KV cache; the simulator needs one."""
    if o["kv_blocks"] is not None and o["gpu_memory_utilization"] is not None:
        raise UserError("use either --kv-blocks or --gpu-memory-utilization, not both")
    if o["engine"] == "sim" and o["kv_blocks"] is None and o["gpu_memory_utilization"] is None:
        raise UserError("--engine sim needs --kv-blocks B or --gpu-memory-utilization U")


def _not_a_number(name: str) -> None:
    raise ValueError(name)


def parse_engine_options(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a value is JSON when it parses (true, 3, 0.5), else text."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--engine-option {item!r}: expected KEY=VALUE")
        try:  # NaN/Infinity are not JSON numbers: such a value stays text (and fails typed)
            out[key.strip()] = json.loads(value, parse_constant=_not_a_number)
        except (json.JSONDecodeError, ValueError, RecursionError):
            out[key.strip()] = value
    return out
