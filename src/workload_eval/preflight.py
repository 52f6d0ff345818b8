"""Everything a run would refuse, checked before any run starts.

No dataset is read and no engine is started, so a sweep's bad point (an openai engine
without a base_url, vllm-0.2 with chunked prefill, a missing data_dir) fails in a second
with the group and engine named, not after the points before it ran for hours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from workload_eval.errors import UserError

if TYPE_CHECKING:
    from workload_eval.runner import RunSpec
    from workload_eval.workloads.catalog import WorkloadSpec

MIN_MODEL_LEN = 2  # a prompt token (BOS) and one generated token


def check_run_spec(spec: RunSpec) -> None:
    """Raise the UserError the run would raise for a bad setting, without running it."""
    _check_locations(spec)
    _check_engine(spec)
    _check_workload(spec)


def _check_locations(spec: RunSpec) -> None:
    from workload_eval.workloads.loader import DATA_DIR_ENV
    from workload_eval.workloads.tokenizers import TOKENIZER_DIR_ENV

    for given, env, option in (
        (spec.data_dir, DATA_DIR_ENV, "data_dir"),
        (spec.tokenizer_dir, TOKENIZER_DIR_ENV, "tokenizer_dir"),
    ):
        named, path = (option, given) if given else (f"${env}", os.environ.get(env))
        if path and not Path(path).is_dir():
            raise UserError(f"{named} {path}: no such folder")


def _check_engine(spec: RunSpec) -> None:
    from workload_eval.engines.base import known_engines

    config = spec.engine_config
    if spec.engine not in known_engines():
        raise UserError(
            f"unknown engine {spec.engine!r}: expected one of {', '.join(known_engines())}"
        )
    if config.max_model_len < MIN_MODEL_LEN:
        raise UserError(f"max_model_len {config.max_model_len}: expected at least {MIN_MODEL_LEN}")
    if spec.engine == "sim":  # the typed options, and everything the simulator refuses
        from workload_eval.engines.sim.engine import check_config

        check_config(config)
    elif spec.engine == "vllm":  # installed, KV blocks that hold a request, CPU KV space
        from workload_eval.engines.base import parse_options
        from workload_eval.engines.vllm.options import VllmOptions
        from workload_eval.engines.vllm.setup import check_setup, guess_device

        opts = parse_options("vllm", config.options)
        assert isinstance(opts, VllmOptions)
        check_setup(config, opts, guess_device(opts))
    else:  # every engine's own Options model (the openai engine's URL, ...)
        from workload_eval.engines.base import parse_options

        parse_options(spec.engine, config.options)


def _check_workload(spec: RunSpec) -> None:
    from workload_eval.workloads.loader import data_dir, find_local_file
    from workload_eval.workloads.resolve import resolve_workload

    ref = resolve_workload(spec.workload)  # parses workload files and inline specs
    if ref.kind == "dataset":  # the user's own text file: found, read when the run starts
        _check_schedule_fits(spec, ref.name, has_arrivals=False, has_sessions=False)
        _check_tokenizer(spec)
        return
    if ref.kind != "catalog" or ref.catalog is None:
        return  # generated and lengths workloads: checked when resolved
    wspec = ref.catalog
    _check_schedule_fits(
        spec, wspec.name, has_arrivals=wspec.has_arrivals, has_sessions=wspec.builder == "chat"
    )
    local = find_local_file(wspec, data_dir(spec.data_dir))
    if local is not None and spec.source in ("auto", "local") and wspec.tokenized:
        _check_tokenizer(spec)
    if spec.source == "local" and local is None:
        raise UserError(
            f"workload {wspec.name!r}: no local file matching {', '.join(wspec.local)} under "
            f"{spec.data_dir or 'the data dir (data_dir or $WORKLOAD_EVAL_DATA_DIR)'}"
        )
    if spec.source == "hub" and wspec.hub is None:
        raise UserError(f"workload {wspec.name!r} has no hub dataset (use source local)")
    if spec.source == "profile" and not _has_profile(wspec):
        raise UserError(f"workload {wspec.name!r} has no shipped length profile")


def _check_schedule_fits(
    spec: RunSpec, name: str, *, has_arrivals: bool, has_sessions: bool
) -> None:
    kind = spec.schedule.kind
    if kind == "trace" and not has_arrivals:
        raise UserError(
            f"schedule trace: workload {name!r} has no arrival times (expected a trace "
            "workload such as azure_conv, azure_code or mooncake)"
        )
    if kind == "sessions" and not has_sessions:
        raise UserError(
            f"schedule sessions: workload {name!r} has no sessions (expected a "
            "multi-turn workload such as sharegpt_chat)"
        )


def _check_tokenizer(spec: RunSpec) -> None:
    """The tokenizer a local dataset will be prepared with loads (the run's own code path,
    cached per process); a hub tokenizer is found, or stood in for, when the run starts."""
    from workload_eval.models import resolve_model
    from workload_eval.workloads.tokenizers import get_tokenizer

    mspec = resolve_model(spec.tokenizer or spec.engine_config.model)
    if mspec.tokenizer != "hub":
        get_tokenizer(mspec, spec.tokenizer_dir)


def _has_profile(wspec: WorkloadSpec) -> bool:
    from workload_eval.workloads import profiles

    return any(profiles.has_profile(wspec.name, f) for f in profiles.FAMILIES)
