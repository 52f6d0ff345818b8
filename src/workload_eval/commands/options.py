"""Options shared by several commands (`run`, `capacity`, `report`, `reproduce`): one
definition each.

Every engine flag means the same in every command; flags that belong to one engine become
that engine's options (``EngineConfig.options``) only when given, and a flag the chosen
engine does not take is an error, never silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import JsonValue, ValidationError

from workload_eval import limits
from workload_eval.analysis.slices import SLICE_SECONDS
from workload_eval.engines.base import EngineConfig, option_flag, options_model, parse_options
from workload_eval.errors import UserError
from workload_eval.slo import GRAMMAR, SLO, parse_slos

F = TypeVar("F", bound=Callable[..., Any])
_SHARED = EngineConfig.model_fields
_DEFAULTS = {name: field.default for name, field in _SHARED.items()}
# Engine-specific flags: option name -> which engines take it (for --help; each engine's
# Options model is what decides).
ENGINE_FLAGS: dict[str, str] = {
    "gpu": "sim",
    "policy": "sim",
    "perf_profile": "sim",
    "base_url": "openai",
    "api_key_env": "openai",
    "endpoint": "openai",
    "max_concurrency": "openai, vllm",
    "device": "vllm",
    "dtype": "vllm",
    "ignore_eos": "openai, vllm",
}
# Why an engine has no such flag, where a generic "does not apply" would not help.
_NO_FLAG_BECAUSE = {
    "ignore_eos": "the sim generates the workload's output lengths; use --output-len-model "
    "eos:TOKENS or recorded:RUN_DIR",
}


def _stack(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply click options so that --help lists them in the order given."""

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


target_options = _stack(
    click.option("--engine", default="sim", show_default=True, help="sim | vllm | openai."),
    click.option("--model", required=True, help="Model name, hub id or config.json path."),
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
        "--enable-chunked-prefill/--no-enable-chunked-prefill",
        default=None,
        help="Chunked prefill [default: the engine's (policy's)].",
    ),
    click.option("--enable-prefix-caching", is_flag=True, default=False),
    click.option("--n", "n", type=int, default=_DEFAULTS["n"], show_default=True, help="Samples."),
)

engine_flag_options = _stack(
    click.option("--gpu", help="sim: simulated GPU [default: a100-40gb]."),
    click.option(
        "--policy",
        type=click.Choice(["vllm-0.2", "vllm-v0", "vllm-v1"]),
        help="sim: scheduler policy, vLLM 0.2 (the paper), V0 (0.3-0.10) or V1 (0.8+) "
        "[default: vllm-0.2].",
    ),
    click.option("--perf-profile", help="sim: measured step-time profile JSON."),
    click.option("--base-url", help="openai: server URL."),
    click.option("--api-key-env", help="openai: env var holding the API key."),
    click.option(
        "--endpoint",
        type=click.Choice(["completions", "chat"]),
        help="openai: API endpoint [default: completions].",
    ),
    click.option("--max-concurrency", type=int, help="openai, vllm: requests in flight at most."),
    click.option("--device", help="vllm: cuda | cpu."),
    click.option("--dtype", help="vllm: weights dtype."),
    click.option(
        "--ignore-eos/--no-ignore-eos",
        default=None,
        help="vllm, openai: --no-ignore-eos stops at EOS and records what the model generated "
        "[default: ignore EOS, outputs follow the workload].",
    ),
    click.option(
        "--engine-option",
        "--option",
        "engine_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="Any other option of the engine (JSON value or text). Repeatable.",
    ),
)

workload_options = _stack(
    click.option(
        "--source",
        "--workload-source",
        "source",
        type=click.Choice(["auto", "hub", "local", "profile"]),
        default="auto",
        show_default=True,
        help="Where workloads load from.",
    ),
    click.option("--data-dir", help="Datasets folder (else $WORKLOAD_EVAL_DATA_DIR)."),
    click.option("--tokenizer-dir", help="Tokenizers folder (else $WORKLOAD_EVAL_TOKENIZER_DIR)."),
    click.option(
        "--tokenizer",
        help="Model whose tokenizer prepares the workload, when --model "
        "is a server's own name [default: --model].",
    ),
    click.option(
        "--sampling",
        type=click.Choice(["first", "random"]),
        default="first",
        show_default=True,
        help="First N then shuffle (seed), or uniform random.",
    ),
    click.option(
        "--output-len-model",
        metavar="MODEL",
        help="Output lengths: reference (the data's, default), eos:TOKENS (stop at EOS so "
        "prompt + output averages TOKENS) or recorded:RUN_DIR (what a run generated).",
    ),
)


def slo_option(*, required: bool = False, help_text: str = "") -> Callable[[F], F]:
    """``--slo METRIC<=VALUE`` (repeatable): the one grammar of every command (slo.py)."""
    return click.option(
        "--slo",
        "slo",
        multiple=True,
        required=required,
        metavar="METRIC<=VALUE",
        help=f"{help_text} {GRAMMAR}. Repeatable.".strip(),
    )


def parse_slo_flags(items: tuple[str, ...]) -> list[SLO]:
    return parse_slos(items, where="--slo")


max_requests_option = click.option(
    "--max-requests",
    type=int,
    help=f"Allow runs of up to N requests (default {limits.MAX_REQUESTS.default:,}: "
    "a guard against typos that would exhaust memory).",
)


calibration_dir_option = click.option(
    "--calibration-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="More of the paper's measured tables (<model>-offline.json, <model>-online.json), "
    "added to or replacing the OPT-13B tables shipped in the package [default: "
    "$WORKLOAD_EVAL_CALIBRATION_DIR, else ../shared/calibration when present].",
)


def slice_seconds_option(help_text: str) -> Callable[[F], F]:
    """``--slice-seconds``: the width of the time slices a run is cut into."""
    return click.option(
        "--slice-seconds",
        type=click.FloatRange(min=0, min_open=True),
        default=SLICE_SECONDS,
        show_default=True,
        help=help_text,
    )


def check_kv_size(o: Mapping[str, Any]) -> None:
    """Exactly one way to size the KV cache; the simulator needs one."""
    if o["kv_blocks"] is not None and o["gpu_memory_utilization"] is not None:
        raise UserError("use either --kv-blocks or --gpu-memory-utilization, not both")
    if o["engine"] == "sim" and o["kv_blocks"] is None and o["gpu_memory_utilization"] is None:
        raise UserError("--engine sim needs --kv-blocks B or --gpu-memory-utilization U")


def _not_a_number(name: str) -> None:
    raise ValueError(name)


def parse_engine_options(items: tuple[str, ...]) -> dict[str, JsonValue]:
    """``KEY=VALUE`` pairs; a value is JSON when it parses (true, 3, 0.5), else text."""
    out: dict[str, JsonValue] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--engine-option {item!r}: expected KEY=VALUE")
        try:  # NaN/Infinity are not JSON numbers: such a value stays text (and fails typed)
            out[key.strip()] = json.loads(value, parse_constant=_not_a_number)
        except (json.JSONDecodeError, ValueError, RecursionError):
            out[key.strip()] = value
    return out


def engine_options(o: Mapping[str, Any]) -> dict[str, JsonValue]:
    """The chosen engine's options from its flags (only those given) and --engine-option."""
    engine = o["engine"]
    known = options_model(engine).model_fields
    options: dict[str, JsonValue] = {}
    for name in ENGINE_FLAGS:
        if o.get(name) is None:
            continue
        if name not in known and name in _NO_FLAG_BECAUSE:
            raise UserError(f"{option_flag(name)}: {_NO_FLAG_BECAUSE[name]}")
        if name not in known:
            takes = [option_flag(n) for n in ENGINE_FLAGS if n in known]
            raise UserError(
                f"{option_flag(name)} does not apply to --engine {engine} (its flags: "
                f"{', '.join(takes) or 'none'}; other options via --engine-option)"
            )
        options[name] = o[name]
    if options.get("perf_profile") is not None:
        path = Path(str(options["perf_profile"]))
        if not path.is_file():
            raise UserError(f"--perf-profile {path}: no such file")
        options["perf_profile"] = str(path.resolve())
    options.update(parse_engine_options(o.get("engine_options", ())))
    parse_options(engine, options)  # a typo fails here, before any loading
    return options


def engine_config(o: Mapping[str, Any], *, seed: int = 0) -> EngineConfig:
    """The EngineConfig the shared flags describe (``check_kv_size`` first)."""
    check_kv_size(o)
    # A block size left at its default stays unset, so an engine can pick its own (vLLM
    # on CPU has no 16-token blocks and takes 32).
    ctx = click.get_current_context(silent=True)
    chosen = ctx is None or ctx.get_parameter_source("block_size") not in (
        click.core.ParameterSource.DEFAULT,
        None,
    )
    shape = {"block_size": o["block_size"]} if chosen else {}
    try:
        return EngineConfig(
            model=o["model"],
            kv_blocks=o["kv_blocks"],
            gpu_memory_utilization=o["gpu_memory_utilization"],
            **shape,
            max_num_batched_tokens=o["max_num_batched_tokens"],
            max_num_seqs=o["max_num_seqs"],
            max_model_len=o["max_model_len"],
            enable_chunked_prefill=o["enable_chunked_prefill"],
            enable_prefix_caching=o["enable_prefix_caching"],
            n=o["n"],
            seed=seed,
            options=engine_options(o),
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise UserError(f"{option_flag(field)}: {msg} (got {err.get('input')!r})") from None


def workload_fields(o: Mapping[str, Any]) -> dict[str, Any]:
    """RunSpec fields set by the workload flags (only those given, so defaults stay implicit)."""
    out: dict[str, Any] = {"source": o["source"], "sampling": o["sampling"]}
    for k in ("data_dir", "tokenizer_dir"):  # absolute, so the stored spec re-runs anywhere
        if o.get(k) is not None:
            out[k] = str(Path(o[k]).expanduser().resolve())
    for k in ("tokenizer", "output_len_model"):
        if o.get(k) is not None:
            out[k] = o[k]
    return out
