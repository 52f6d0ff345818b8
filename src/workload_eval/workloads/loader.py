"""``load_workload``: find the data (file, hub, or shipped profile), prepare it once, select.

Preparing (building texts and tokenizing) is cached on disk; selection runs every call.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from workload_eval import limits
from workload_eval.errors import UserError
from workload_eval.models import ModelSpec, resolve_model
from workload_eval.workloads import cache, profiles
from workload_eval.workloads.builders import build
from workload_eval.workloads.catalog import CUSTOM_FIELDS, WorkloadSpec
from workload_eval.workloads.hub import hub_available, load_hub_records
from workload_eval.workloads.output_models import apply_output_len_model, parse_output_len_model
from workload_eval.workloads.readers import read_table
from workload_eval.workloads.resolve import resolve_workload
from workload_eval.workloads.selection import (
    CATEGORY,
    Sampling,
    Selection,
    select_pairs,
    select_sessions,
    select_trace,
)
from workload_eval.workloads.tables import generated_table, lengths_file_table
from workload_eval.workloads.tokenizers import Tokenizer, get_tokenizer

DATA_DIR_ENV = "WORKLOAD_EVAL_DATA_DIR"
Source = Literal["auto", "hub", "local", "profile"]


def data_dir(path: str | Path | None = None) -> Path | None:
    """The folder laid out like ../shared/datasets: argument, then env, else none."""
    p = path or os.environ.get(DATA_DIR_ENV)
    return Path(p) if p else None


def find_local_file(spec: WorkloadSpec, ddir: Path | None) -> Path | None:
    """The first file under ``ddir`` matching the spec's patterns, in pattern order."""
    if ddir is None or not ddir.is_dir():
        return None
    for pattern in spec.local:
        hits = sorted(p for p in ddir.glob(pattern) if p.is_file() and not p.name.startswith("."))
        if hits:
            return hits[0]
    return None


def _custom_spec(path: Path | None, name: str | None = None) -> WorkloadSpec:
    assert path is not None
    return WorkloadSpec(
        name=name or path.stem.split(".")[0],
        use_case="user dataset",
        builds="prompt -> output",
        builder="prompt_output",
        fields=CUSTOM_FIELDS,
        local=(path.name,),
    )


def _profile_family(mspec: ModelSpec) -> str:
    return mspec.profile_family if mspec.tokenizer == "hub" else mspec.tokenizer


def _tokenize(built: pd.DataFrame, tok: Tokenizer, chat: bool) -> pd.DataFrame:
    prompts = built["prompt_text"].tolist()
    outputs = built["output_text"].tolist()
    o_len = np.asarray(tok.count_batch(outputs), dtype=np.int64)
    if not chat:
        p_ids = tok.encode_batch(prompts)
        p_len = np.fromiter((len(x) for x in p_ids), dtype=np.int64, count=len(p_ids))
        out = pd.DataFrame({"prompt_len": p_len, "output_len": o_len, "prompt_token_ids": p_ids})
        if CATEGORY in built.columns:
            out[CATEGORY] = built[CATEGORY].to_numpy()
        return out
    p_len = np.asarray(tok.count_batch(prompts), dtype=np.int64)
    # A turn's prompt is the whole history (every earlier message, each encoded as the
    # seed did) plus this turn's message; prompt_text is this turn's message only.
    sess = built["session_id"].to_numpy()
    per_turn = p_len + o_len
    history = pd.Series(per_turn).groupby(sess).cumsum().to_numpy() - per_turn
    return pd.DataFrame(
        {
            "session_id": sess,
            "turn": built["turn"].to_numpy(),
            "prompt_len": history + p_len,
            "output_len": o_len,
            "prompt_text": prompts,
        }
    )


def _prepare_text(
    spec: WorkloadSpec,
    raw_loader: Any,
    source_id: str,
    where: str,
    mspec: ModelSpec,
    tokenizer_dir: str | Path | None,
    fields: Mapping[str, str] | None,
    use_cache: bool,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    tok = get_tokenizer(mspec, tokenizer_dir) if spec.tokenized else None
    key = cache.cache_key(
        workload=spec.model_dump(),
        source=source_id,
        tokenizer=tok.identity if tok else None,
        fields=dict(fields or {}),
    )
    if use_cache and (hit := cache.read_cached(key)) is not None:
        df, meta = hit
        return df, {**meta, "cached": True}
    t0 = time.perf_counter()
    built = build(spec, raw_loader(), where, fields)
    if tok is not None:
        prepared = _tokenize(built, tok, chat=spec.builder == "chat")
        tname = tok.name
    else:
        prepared = built
        tname = spec.lengths_tokenizer or "precomputed"
    meta = {
        "tokenizer": tname,
        "source_id": source_id,
        "where": where,
        "prepare_s": round(time.perf_counter() - t0, 3),
    }
    if use_cache:
        cache.write_cached(key, prepared, meta)
    return prepared, {**meta, "cached": False}


def prepare(
    spec: WorkloadSpec,
    mspec: ModelSpec,
    *,
    source: Source = "auto",
    data_dir_: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    data_file: str | Path | None = None,
    fields: Mapping[str, str] | None = None,
    use_cache: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The whole workload, built and tokenized, before selection; and where it came from."""
    if source not in ("auto", "hub", "local", "profile"):
        raise UserError(f"--source {source!r}: expected auto, hub, local or profile")
    ddir = data_dir(data_dir_)
    if ddir is not None and not ddir.is_dir():
        named = "--data-dir" if data_dir_ else f"${DATA_DIR_ENV}"
        raise UserError(
            f"{named} {ddir}: no such folder (expected a folder laid out like ../shared/datasets)"
        )
    local = Path(data_file) if data_file is not None else find_local_file(spec, ddir)
    if data_file is not None and not local.is_file():
        raise UserError(f"{local}: no such file (given as the data file of {spec.name!r})")
    if source == "auto":
        if local is not None:
            source = "local"
        elif spec.hub is not None and hub_available():
            source = "hub"
        elif spec.profiled:
            source = "profile"
        else:
            looked = f"{ddir}/{spec.local[0]}" if ddir else f"--data-dir (or ${DATA_DIR_ENV})"
            raise UserError(
                f"workload {spec.name!r}: no data found (looked for {looked}"
                f"{'; hub offline' if spec.hub else ''}; no shipped profile)"
            )
    if source == "local":
        if local is None:
            where = f"{ddir}" if ddir else f"no data dir (--data-dir or ${DATA_DIR_ENV})"
            raise UserError(
                f"workload {spec.name!r}: no local file matching "
                f"{', '.join(spec.local)} under {where}"
            )
        prepared, meta = _prepare_text(
            spec,
            lambda: read_table(local),
            cache.file_identity(local),
            str(local),
            mspec,
            tokenizer_dir,
            fields,
            use_cache,
        )
        return prepared, {**meta, "source": "local", "path": str(local)}
    if source == "hub":
        if spec.hub is None:
            raise UserError(f"workload {spec.name!r} has no hub dataset (use --source local)")
        if not hub_available():
            raise UserError(
                f"workload {spec.name!r}: the Hugging Face hub is not reachable "
                "(offline); use --source local or --source profile"
            )
        hub = spec.hub
        try:
            records, fingerprint = load_hub_records(hub.id, hub.config, hub.split)
        except Exception as e:
            raise UserError(
                f"hub dataset {hub.id!r}: cannot load ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        raw = pd.DataFrame.from_records(records)
        prepared, meta = _prepare_text(
            spec, lambda: raw, fingerprint, f"hub:{hub.id}", mspec, tokenizer_dir, fields, use_cache
        )
        return prepared, {**meta, "source": "hub"}
    wanted = _profile_family(mspec)
    family = profiles.profile_family_for(spec.name, wanted)
    if mspec.tokenizer == "hub" or family != wanted:
        warnings.warn(
            f"{mspec.name}: using the shipped {family} length profile of {spec.name}", stacklevel=3
        )
    df = profiles.load_profile(spec.name, family)
    return df, {
        "source": "profile",
        "tokenizer": family,
        "cached": False,
        "where": str(profiles.profile_path(spec.name, family)),
    }


def _check_args(num_requests: int | None, max_model_len: int, sampling: str, seed: int) -> None:
    if num_requests is not None and (
        not isinstance(num_requests, int | np.integer) or num_requests < 1
    ):
        raise UserError(f"--num-requests {num_requests!r}: expected a positive integer")
    if num_requests is not None:
        limits.check_request_count(num_requests, what=f"--num-requests {num_requests}")
    if not 2 <= max_model_len <= limits.MAX_INT:
        raise UserError(
            f"--max-model-len {max_model_len!r}: expected an integer from 2 to {limits.MAX_INT}"
        )
    if sampling not in ("first", "random"):
        raise UserError(f"--sampling {sampling!r}: expected first or random")
    if not (isinstance(seed, int | np.integer) and 0 <= seed <= limits.MAX_SEED):
        raise UserError(f"--seed {seed!r}: expected an integer from 0 to {limits.MAX_SEED}")


def _load_dataset(
    spec: WorkloadSpec,
    model: str,
    *,
    num_requests: int | None,
    max_model_len: int,
    seed: int,
    sampling: Sampling,
    data_dir: str | Path | None,
    tokenizer_dir: str | Path | None,
    source: Source,
    data_file: str | Path | None,
    fields: Mapping[str, str] | None,
    use_cache: bool,
) -> pd.DataFrame:
    """A text (or catalog lengths) dataset: prepared once, filtered and selected as the seed."""
    _check_args(num_requests, max_model_len, sampling, seed)
    mspec = resolve_model(model)
    prepared, meta = prepare(
        spec,
        mspec,
        source=source,
        data_dir_=data_dir,
        tokenizer_dir=tokenizer_dir,
        data_file=data_file,
        fields=fields,
        use_cache=use_cache,
    )
    if spec.lengths_tokenizer == "llama-2" and _profile_family(mspec) != "llama-2":
        warnings.warn(
            f"{spec.name}: lengths were counted with the Llama-2 tokenizer, used as-is for "
            f"{mspec.name}",
            stacklevel=3,
        )
    min_out = 1 if spec.tokenized else 0  # tokenized outputs carry a BOS: 1 token = empty
    rule = Selection(
        num_requests=num_requests,
        max_model_len=max_model_len,
        seed=seed,
        sampling=sampling,
        min_output_len=min_out,
        where=f"workload {spec.name!r} ({meta['where']})",
    )
    if spec.builder == "chat":
        df = select_sessions(prepared, rule)
    elif "arrival_time" in prepared.columns:
        df = select_trace(prepared, rule)
    else:
        df = select_pairs(prepared, rule, category_mix=spec.category_mix)
    df.attrs = {
        "model": mspec.name,
        "tokenizer": meta["tokenizer"],
        "source": meta["source"],
        "where": meta["where"],
        "cached": meta["cached"],
    }
    return df


def load_workload(
    name: str,
    model: str,
    *,
    num_requests: int | None = None,
    max_model_len: int = 2048,
    seed: int = 0,
    sampling: Sampling = "first",
    data_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
    source: Source = "auto",
    data_file: str | Path | None = None,
    fields: Mapping[str, str] | None = None,
    use_cache: bool = True,
    output_len_model: str | None = None,
) -> pd.DataFrame:
    """Requests of a workload for ``model``: a catalog name, a use-case family, a workload
    file or inline spec, a lengths/trace file, or a text dataset file (see ``resolve``).

    Datasets are selected as the seed did (``num_requests=None`` keeps every request that
    passes the length filter); generated workloads give ``num_requests`` requests (None: the
    spec's own count). ``data_file`` replaces the catalog's file; ``fields`` maps roles to its
    column names. ``output_len_model`` is ``reference`` (default), ``eos:TOKENS`` or
    ``recorded:RUN_DIR`` (see ``output_models``).
    """
    _check_args(num_requests, max_model_len, sampling, seed)
    out_model = parse_output_len_model(output_len_model)
    ref = resolve_workload(name, data_file)
    if ref.kind == "generated":
        df = generated_table(ref, num_requests, seed)
        assert ref.generated is not None
        attrs = {"source": "generated", "where": ref.origin or "inline", "tokenizer": "none"}
        attrs["workload_spec"] = ref.generated.model_dump(mode="json")
        attrs["serialize_turns"] = bool(df.attrs.get("serialize_turns", False))
    elif ref.kind == "lengths":
        df = lengths_file_table(
            ref,
            num_requests=num_requests,
            max_model_len=max_model_len,
            seed=seed,
            sampling=sampling,
        )
        attrs = {"source": "local", "where": str(ref.path), "tokenizer": "none (token counts)"}
        attrs.update(failed_rows=df.attrs.get("failed_rows", 0), format=df.attrs.get("format"))
    else:
        spec = ref.catalog if ref.catalog is not None else _custom_spec(ref.path, ref.name)
        df = _load_dataset(
            spec,
            model,
            num_requests=num_requests,
            max_model_len=max_model_len,
            seed=seed,
            sampling=sampling,
            data_dir=data_dir,
            tokenizer_dir=tokenizer_dir,
            source=source,
            data_file=ref.path,
            fields=fields,
            use_cache=use_cache,
        )
        attrs = dict(df.attrs)
    df["workload"] = ref.name
    df.attrs = {
        "workload": ref.name,
        "model": attrs.pop("model", None) or _model_name(model),
        **attrs,
        "cached": attrs.get("cached", False),
        "max_model_len": max_model_len,
        "seed": seed,
        "sampling": sampling,
        "output_len_model": str(out_model),
    }
    return apply_output_len_model(df, out_model, seed)


def _model_name(model: str) -> str:
    try:
        return resolve_model(model).name
    except UserError:
        return model
