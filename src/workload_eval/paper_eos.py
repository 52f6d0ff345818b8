"""The output lengths the paper's engine produced, as ``eos`` output-length models.

The paper sampled without ``ignore_eos``: OPT-13B stopped at EOS, often long before the
reference output. Its tables say how much: the offline ``token / request`` ratio is the mean
prompt + generated tokens it processed, and its light-load latency says how many requests
stopped at once. This module turns both into one ``eos:TOKENS,early=F,early_len=K`` model
per (model, workload, N), by one rule for every workload:

1. TOKENS: the paper's mean prompt + generated tokens per request for the same N (offline:
   the first N requests; online: the largest N), averaged over its KV sizes (the same
   requests; the spread between sizes is sampling noise).
2. F and K: the share of requests that stop early and their mean length. At light load
   (rate <= ``LIGHT_LOAD`` x the offline throughput at that KV size) a request runs alone,
   so its normalized latency is (prefill + its decode steps) / generated tokens, from the
   simulator's step-time model at batch 1. A request stopping after one token costs a whole
   prefill per token (CNN/DailyMail: ~0.12 s for a 760-token article), the reference
   outputs ~0.03 s/token. (F, K) is the grid point whose no-load mean and p95 over the
   first N = 1000 requests come closest (squared log error) to the median of the paper's
   light-load avg and p95. A workload the paper measured only near capacity (no light-load
   point: alpaca, dolly) keeps F = 0.

A model without tables of its own borrows them from the nearest measured model (same
tokenizer family first, then the paper's model order): the same F and K, and TOKENS scaled
by our reference mean for this model over that for the measured one (the same relative
shortening). This corrects the workload, never the engine: no engine constant changes.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workload_eval import paper
from workload_eval.paper_data import PaperTables

if TYPE_CHECKING:
    from workload_eval.engines.sim.perf_model import PerfModel

LIGHT_LOAD = 0.1  # rate / offline request throughput at the same KV size: queueing adds little
EARLY_SHARES = tuple(round(0.01 * i, 2) for i in range(61))  # F: 0 .. 0.6
EARLY_LENS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)  # K: mean tokens of an early stop
POPULATION = max(paper.NUM_REQUESTS)  # the requests the estimate runs over (the first 1000)
ONLINE = "online"  # the key of the online runs' model in ``StopModel.specs``


@dataclass(frozen=True)
class LightLoad:
    """The paper's light-load latency of one workload and our stop model's at no load."""

    points: int  # how many (KV size, rate) points of the paper's online table are light
    paper_avg: float
    paper_p95: float
    model_avg: float
    model_p95: float


@dataclass(frozen=True)
class StopModel:
    """The eos output-length models of one (model, workload)."""

    model: str
    workload: str
    tokens: dict[int | str, float]  # N (offline) or ONLINE -> mean prompt + generated tokens
    early: float
    early_len: float
    light: LightLoad | None  # None: no light-load point (F = 0) or borrowed
    borrowed_from: str | None = None  # a model without tables: whose stop model this is

    def spec(self, key: int | str) -> str:
        """The ``--output-len-model`` text for N (offline) or ``ONLINE``."""
        extra = f",early={self.early:g},early_len={self.early_len:g}" if self.early else ""
        return f"eos:{self.tokens[key]:.1f}{extra}"

    @property
    def basis(self) -> str:
        if self.borrowed_from:
            return f"borrowed from {self.borrowed_from}'s tables"
        if self.light is None:
            return "its tables; no light-load point (F = 0)"
        return f"its tables; {self.light.points} light-load points"


def paper_tokens(tables: PaperTables, model: str) -> dict[str, dict[int | str, float]]:
    """Per workload: N -> the paper's mean prompt + generated tokens per request (and ONLINE)."""
    off = tables.offline()
    off = off[off["model"] == model]
    out: dict[str, dict[int | str, float]] = {}
    for workload, g in off.groupby("workload"):
        per_n = (g["token_throughput"] / g["request_throughput"]).groupby(g["num_requests"]).mean()
        tokens: dict[int | str, float] = {int(n): float(v) for n, v in per_n.items()}
        tokens[ONLINE] = tokens[max(int(n) for n in per_n.index)]
        out[str(workload)] = tokens
    return out


def light_load_points(tables: PaperTables, model: str, workload: str) -> pd.DataFrame:
    """The paper's online points at light load: rate <= LIGHT_LOAD x offline throughput."""
    off, on = tables.offline(), tables.online()
    off = off[(off["model"] == model) & (off["workload"] == workload)]
    on = on[(on["model"] == model) & (on["workload"] == workload)]
    if off.empty or on.empty:
        return on.iloc[:0]
    biggest = off[off["num_requests"] == off["num_requests"].max()]
    capacity = biggest.set_index("kv_blocks")["request_throughput"]
    limit = on["kv_blocks"].map(capacity) * LIGHT_LOAD
    return on[on["rate"] <= limit]


class NoLoadLatency:
    """Per request, (prefill + decode steps) / generated tokens with nothing else running.

    The step times (batch 1) are tabulated once per prompt length and context, so trying
    another output length per request costs a few array operations.
    """

    def __init__(self, prompts: np.ndarray, max_context: int, perf: PerfModel) -> None:
        step = np.array([perf.decode_time(1, c) for c in range(max_context + 1)])
        self._cum = np.concatenate([[0.0], np.cumsum(step)])  # [c]: steps at contexts < c
        uniq, inverse = np.unique(prompts, return_inverse=True)
        pre = np.array([perf.prefill_time(1, int(p), int(p) ** 2) for p in uniq])
        self._prefill = pre[inverse]
        self._prompts = prompts

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        p = self._prompts
        decode = self._cum[p + outputs] - self._cum[p + 1]  # contexts P+1 .. P+O-1
        return (self._prefill + decode) / outputs


def _fit_early(
    frame: pd.DataFrame, tokens: float, light: pd.DataFrame, perf: PerfModel
) -> tuple[float, float, LightLoad]:
    """The (F, K) of the grid whose no-load mean and p95 come closest to the paper's."""
    from workload_eval.workloads.output_models import Eos, eos_outputs

    target_avg = float(light["normalized_latency_mean"].median())
    target_p95 = float(light["normalized_latency_p95"].median())
    prompts = frame["prompt_len"].to_numpy(dtype=np.int64)
    latency = NoLoadLatency(prompts, int((prompts + frame["output_len"]).max()) + 1, perf)
    best: tuple[float, float, float, float, float] | None = None
    with warnings.catch_warnings():  # targets above our data's mean are expected here
        warnings.simplefilter("ignore", UserWarning)
        for k in EARLY_LENS:
            for f in EARLY_SHARES:
                outputs, _ = eos_outputs(frame, Eos(tokens, f, k), paper.SEED)
                nl = latency(outputs)
                avg, p95 = float(nl.mean()), float(np.percentile(nl, 95))
                loss = np.log(avg / target_avg) ** 2 + np.log(p95 / target_p95) ** 2
                if best is None or loss < best[0] - 1e-12:
                    best = (loss, f, k, avg, p95)
    assert best is not None
    _, f, k, avg, p95 = best
    return f, k, LightLoad(len(light), target_avg, target_p95, avg, p95)


@functools.lru_cache(maxsize=64)
def reference_frame(model: str, workload: str, num_requests: int | None) -> pd.DataFrame:
    """Our requests as the study loads them (reference outputs), lengths only; do not modify."""
    from workload_eval.workloads import load_workload

    df = load_workload(
        workload, model, num_requests=num_requests, max_model_len=paper.MAX_MODEL_LEN
    )
    return df[["prompt_len", "output_len"]].reset_index(drop=True)


def measured_stop_model(tables: PaperTables, model: str, workload: str) -> StopModel | None:
    """The stop model of a (model, workload) the tables measured; None when they did not."""
    from workload_eval.engines.sim.hardware import resolve_gpu
    from workload_eval.engines.sim.perf_model import build_perf_model
    from workload_eval.models import resolve_model

    tokens = paper_tokens(tables, model).get(workload)
    if tokens is None:
        return None
    light = light_load_points(tables, model, workload)
    if light.empty:
        return StopModel(model, workload, tokens, 0.0, 1.0, None)
    frame = reference_frame(model, workload, POPULATION)
    perf = build_perf_model(resolve_model(model), resolve_gpu(paper.GPU))
    f, k, fit = _fit_early(frame, tokens[POPULATION], light, perf)
    return StopModel(model, workload, tokens, f, k if f else 1.0, fit)


def nearest_measured(model: str, measured: list[str]) -> str | None:
    """The measured model to borrow from: same tokenizer family first, then paper order."""
    from workload_eval.models import resolve_model

    if not measured:
        return None
    family = resolve_model(model).tokenizer
    order = {m: i for i, m in enumerate(paper.MODELS)}
    return min(
        measured,
        key=lambda m: (resolve_model(m).tokenizer != family, order.get(m, len(order)), m),
    )


def borrowed_stop_model(source: StopModel, model: str) -> StopModel:
    """``source``'s stop model for ``model``: same F and K, TOKENS scaled by our data's ratio."""
    tokens: dict[int | str, float] = {}
    for key, value in source.tokens.items():
        n = POPULATION if key == ONLINE else int(key)
        ours = reference_frame(model, source.workload, n)
        theirs = reference_frame(source.model, source.workload, n)
        scale = float((ours.prompt_len + ours.output_len).mean()) / float(
            (theirs.prompt_len + theirs.output_len).mean()
        )
        tokens[key] = value * scale
    return StopModel(
        model, source.workload, tokens, source.early, source.early_len, None, source.model
    )


def stop_models(
    tables: PaperTables, models: list[str], workloads: list[str]
) -> dict[tuple[str, str], StopModel]:
    """One stop model per (model, workload) that the tables can say anything about."""
    measured: dict[tuple[str, str], StopModel] = {}
    for m in models:
        for w in workloads:
            sm = measured_stop_model(tables, m, w)
            if sm is not None:
                measured[(m, w)] = sm
    out = dict(measured)
    for m in models:
        for w in workloads:
            if (m, w) in out:
                continue
            source = nearest_measured(m, [s for s, ws in measured if ws == w])
            if source is not None:
                out[(m, w)] = borrowed_stop_model(measured[(source, w)], m)
    return out
