"""The output lengths the paper's engine produced, as ``eos`` output-length models.

The paper sampled without ``ignore_eos``: OPT-13B stopped at EOS, often long before the
reference output. Its tables say how much: the offline ``token / request`` ratio is the mean
prompt + generated tokens it processed, and its light-load latency says how many requests
stopped at once. This module turns both into one ``eos:TOKENS,early=F,early_len=K`` model
per (model, workload, N), by one rule for every workload:

1. TOKENS: the paper's mean prompt + generated tokens per request for the same N (offline:
   the first N requests; online: the largest N), averaged over its KV sizes (the same
   requests; the spread between sizes is sampling noise). Outputs are cut to meet it;
   where our requests hold fewer tokens than that even without any cut, the paper's
   prompts were longer than ours (CNN/DailyMail: its articles come from the train split,
   ours from the test split), and every prompt is stretched by one factor
   (``prompts=stretch``).
2. F and K: the share of requests that stop early and their mean length. At light load
   (rate <= ``LIGHT_LOAD`` x the offline throughput at that KV size) a request runs alone,
   so its normalized latency is (prefill + its decode steps) / generated tokens, from the
   simulator's step-time model at batch 1. A request stopping after one token costs a whole
   prefill per token (CNN/DailyMail: ~0.13 s for an 820-token article), a long output
   ~0.03 s/token. (F, K) is the grid point whose no-load mean and p95 over the first
   N = 1000 requests (with step 1 applied) come closest, in squared log error, to the
   medians of the paper's light-load avg and p95. A workload the paper measured only near
   capacity (no light-load point: alpaca, dolly) keeps F = 0.

A model without tables of its own borrows them from the nearest measured model (same
tokenizer family first, then the paper's model order): the same F and K, and TOKENS scaled
by our reference mean for this model over that for the measured one (the same relative
shortening). This corrects the workload, never the engine: no engine constant changes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from workload_eval import paper
from workload_eval.paper_data import PaperTables
from workload_eval.workloads.output_models import Eos, eos_outputs, solve_eos

if TYPE_CHECKING:
    from workload_eval.engines.sim.perf_model import PerfModel

LIGHT_LOAD = 0.1  # rate / offline request throughput at the same KV size: queueing adds little
EARLY_SHARES = tuple(round(0.01 * i, 2) for i in range(61))  # F: 0 .. 0.6
EARLY_LENS = (1.0, 1.25, 1.5, 2.0, 3.0, 4.0)  # K: mean tokens of an early stop
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
    online: str  # the online runs' model, solved on the largest N (see ``spec``)
    borrowed_from: str | None = None  # a model without tables: whose stop model this is

    def spec(self, key: int | str) -> str:
        """The ``--output-len-model`` text for N (offline) or ``ONLINE``.

        Offline, TOKENS is solved on the run's own requests (the paper's first N). Online, a
        run's requests are as many as its arrivals, so the stop probability and prompt
        factor solved on the largest N are given fixed: every rate gets the same outputs.
        """
        if key == ONLINE:
            return self.online
        if key not in self.tokens:  # a table without this N: the nearest N it has
            key = min((k for k in self.tokens if k != ONLINE), key=lambda k: abs(int(k) - int(key)))
        return str(_eos(round(self.tokens[key], 1), self.early, self.early_len))

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

    Step times at batch 1 are tabulated once per prompt length and context, so trying other
    lengths costs a few array operations.
    """

    def __init__(self, perf: PerfModel, max_context: int = paper.MAX_MODEL_LEN) -> None:
        ctx = range(max_context + 1)
        step = np.array([perf.decode_time(1, c) for c in ctx])
        self._cum = np.concatenate([[0.0], np.cumsum(step)])  # [c]: steps at contexts < c
        self._prefill = np.array([perf.prefill_time(1, c, c * c) for c in ctx])

    def __call__(self, prompts: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        decode = self._cum[prompts + outputs] - self._cum[prompts + 1]  # contexts P+1..P+O-1
        return (self._prefill[prompts] + decode) / outputs


def _eos(tokens: float, early: float, early_len: float) -> Eos:
    return Eos(tokens, early, early_len, stretch=True)


def _fit_early(
    frame: pd.DataFrame, tokens: float, light: pd.DataFrame, perf: PerfModel
) -> tuple[float, float, LightLoad]:
    """The (F, K) of the grid whose no-load mean and p95 come closest to the paper's."""
    target_avg = float(light["normalized_latency_mean"].median())
    target_p95 = float(light["normalized_latency_p95"].median())
    latency = NoLoadLatency(perf)
    best: tuple[float, float, float, float, float] | None = None
    for k in EARLY_LENS:
        for f in EARLY_SHARES:
            outputs, prompts = eos_outputs(frame, _eos(tokens, f, k), paper.SEED)
            nl = latency(prompts, outputs)
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
    frame = reference_frame(model, workload, _largest_n(tokens))
    light = light_load_points(tables, model, workload)
    f, k, fit = 0.0, 1.0, None
    if not light.empty:
        perf = build_perf_model(resolve_model(model), resolve_gpu(paper.GPU))
        f, k, fit = _fit_early(frame, tokens[ONLINE], light, perf)
    online = _online_spec(frame, tokens[ONLINE], f, k)
    return StopModel(model, workload, tokens, f, k if f else 1.0, fit, online)


def _largest_n(tokens: dict[int | str, float]) -> int:
    return max(k for k in tokens if isinstance(k, int))


def _online_spec(frame: pd.DataFrame, tokens: float, early: float, early_len: float) -> str:
    """The model solved on ``frame`` (the largest N), its parameters fixed."""
    return str(solve_eos(frame, _eos(round(tokens, 1), early, early_len), paper.SEED))


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
        n = _largest_n(source.tokens) if key == ONLINE else int(key)
        ours = reference_frame(model, source.workload, n)
        theirs = reference_frame(source.model, source.workload, n)
        scale = float((ours.prompt_len + ours.output_len).mean()) / float(
            (theirs.prompt_len + theirs.output_len).mean()
        )
        tokens[key] = value * scale
    frame = reference_frame(model, source.workload, _largest_n(tokens))
    online = _online_spec(frame, tokens[ONLINE], source.early, source.early_len)
    return StopModel(
        model,
        source.workload,
        tokens,
        source.early,
        source.early_len,
        None,
        online,
        source.model,
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
