"""The seed paper's experiments on the simulator: its workloads, its engine settings, a run.

Shared by the overhead fit (``fitting``), ``benchmarks/sim_vs_paper.py`` and
``scripts/fit_perf_model.py``, so the benchmark and the fit run the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from workload_eval import paper
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.sim.calibration import PERF, PerfConstants
from workload_eval.engines.sim.engine import SimEngine
from workload_eval.engines.sim.hardware import resolve_gpu
from workload_eval.engines.sim.perf_model import PerfModel, RooflinePerfModel
from workload_eval.metrics import summarize
from workload_eval.models import resolve_model
from workload_eval.schedules import ScheduleSpec, build_schedule

MODEL = paper.MODELS[0]  # the paper's measurements are OPT-13B's


def paper_workload(
    name: str,
    num_requests: int | None,
    output_len_model: str | None = None,
    *,
    data_dir: str | Path | None = None,
    tokenizer_dir: str | Path | None = None,
) -> pd.DataFrame:
    """The paper's first ``num_requests`` of a workload with the OPT tokenizer.

    ``output_len_model`` as ``--output-len-model`` takes it: e.g. ``eos:TOKENS`` cuts the
    outputs so the mean prompt + output tokens is TOKENS, what the paper processed
    (``paper_eos``: what ``reproduce`` runs); lengths only then, no token ids.
    """
    from workload_eval.workloads import load_workload

    df = load_workload(
        name,
        MODEL,
        num_requests=num_requests,
        data_dir=data_dir,
        tokenizer_dir=tokenizer_dir,
        output_len_model=output_len_model,
    )
    if output_len_model not in (None, "reference"):
        df = df.drop(columns=[c for c in ("prompt_token_ids",) if c in df.columns])
    return df


def paper_engine_config(kv_blocks: int) -> EngineConfig:
    """The paper's engine settings (vLLM 0.2 policy on an A100-40GB) at one KV size."""
    return EngineConfig(
        model=MODEL,
        kv_blocks=kv_blocks,
        block_size=paper.BLOCK_SIZE,
        max_num_batched_tokens=paper.MAX_NUM_BATCHED_TOKENS,
        max_num_seqs=paper.MAX_NUM_SEQS,
        max_model_len=paper.MAX_MODEL_LEN,
        seed=paper.SEED,
        options={"gpu": paper.GPU, "policy": paper.POLICY},
    )


def roofline(constants: PerfConstants = PERF) -> PerfModel:
    """The performance model of the paper's OPT-13B on an A100-40GB with ``constants``."""
    return RooflinePerfModel(resolve_model(MODEL), resolve_gpu(paper.GPU), constants)


def simulate(
    frame: pd.DataFrame,
    schedule: ScheduleSpec,
    kv_blocks: int,
    *,
    perf: PerfModel | None = None,
) -> dict[str, Any]:
    """The run's summary (metrics.summarize) of ``frame`` under the paper's settings."""
    built = build_schedule(schedule, frame, seed=paper.SEED)
    return summarize(SimEngine(perf).run(built, paper_engine_config(kv_blocks)))
