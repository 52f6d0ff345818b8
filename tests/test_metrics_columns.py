"""summarize computes on numpy columns; its values must be exactly those of the Series
definitions (e2e_latency, ttft, tpot, normalized_latency, np.percentile, pandas' mean)."""

import math

import numpy as np
import pandas as pd
from request_rows import request_row

from workload_eval.analysis.intervals import num_batches, t_quantile
from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, EngineReport, RunRecords
from workload_eval.metrics import completed, e2e_latency, normalized_latency, summarize, tpot, ttft


def _messy_run(n: int = 2000) -> pd.DataFrame:
    """Out-of-order arrivals with ties, failures, NaN first tokens, 0- and 1-token replies,
    token times on some requests (None on one)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(n):
        arrival = float(np.round(rng.uniform(0, 300), 1))
        first = arrival + float(rng.lognormal(-2, 1))
        gen = int(rng.choice([0, 1, 2, 40, 300]))
        finish = first + gen * float(rng.uniform(0.01, 0.05))
        status = "ok" if rng.random() > 0.05 else str(rng.choice(["failed", "ignored"]))
        times = list(np.linspace(first, finish, gen)) if i % 3 == 0 else []
        row = request_row(i, arrival, first, finish, 20, gen, status, token_times=times)
        row["send_time"] = arrival + float(rng.exponential(0.01))
        rows.append(row)
    req = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    req.loc[7, "first_token_time"] = math.nan
    req.at[9, "token_times"] = None
    return req


def _reference_ci(v: np.ndarray, pct: float | None, center: float) -> tuple[float | None, ...]:
    k = num_batches(len(v), pct)
    if k == 0:
        return None, None
    size = len(v) // k
    batches = v[len(v) - k * size :].reshape(k, size)
    est = batches.mean(axis=1) if pct is None else np.percentile(batches, pct, axis=1)
    half = t_quantile(0.95, k - 1) * math.sqrt(float(np.sum((est - center) ** 2)) / (k - 1) / k)
    return center - half, center + half


def test_summary_values_are_the_series_definitions_bit_for_bit():
    req = _messy_run()
    steps = pd.DataFrame(columns=list(STEP_COLUMNS))
    s = summarize(RunRecords(req, steps, EngineReport(engine="hand")), slo=["ttft<=0.3"])
    done = completed(req).sort_values("arrival_time", kind="stable")
    for key, f in (("ttft", ttft), ("tpot", tpot), ("e2e_latency", e2e_latency)):
        v = f(done).dropna().to_numpy()
        assert s[f"{key}_mean"] == float(v.mean())
        for p in (50, 90, 95, 99):
            assert s[f"{key}_p{p}"] == float(np.percentile(v, p)), (key, p)
            low, high = _reference_ci(v, p, s[f"{key}_p{p}"])
            assert (s[f"{key}_p{p}_ci_low"], s[f"{key}_p{p}_ci_high"]) == (low, high)
        assert (s[f"{key}_mean_ci_low"], s[f"{key}_mean_ci_high"]) == _reference_ci(
            v, None, s[f"{key}_mean"]
        )
    norm = normalized_latency(done)
    assert s["normalized_latency_mean"] == float(norm.mean())  # pandas' NaN-skipping mean
    assert s["normalized_latency_p95"] == float(np.nanpercentile(norm, 95))
    gaps = [np.diff(np.asarray(t, dtype=float)) for t in done["token_times"] if t and len(t) > 1]
    itl = np.concatenate(gaps)
    assert s["itl_mean"] == float(itl.mean()) and s["itl_p99"] == float(np.percentile(itl, 99))
    lag = (req["send_time"] - req["arrival_time"]).to_numpy()
    assert s["send_lag_mean"] == float(lag.mean())
    ordered = req.sort_values("arrival_time", kind="stable")
    met = (ordered["status"] == "ok") & (ttft(ordered) <= 0.3)
    assert s["slo_attainment"] == float(met.to_numpy(dtype=float).mean())
    assert s["num_failed"] == int((req["status"] != "ok").sum())
