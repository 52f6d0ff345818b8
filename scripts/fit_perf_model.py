"""Re-fit the simulator's engine-overhead constants to the seed paper's offline results.

Fits ``prefill_step_overhead``, ``decode_step_overhead`` and the per-sequence overhead of
``calibration.PerfConstants`` (the hardware efficiencies held at their DistServe-derived
values) to the paper's OPT-13B offline request throughput at every KV size, by running the
simulator itself (``engines/sim/fitting.py``). Prints the loss under the shipped and the
fitted constants, then every point's error under the fitted ones (``--evaluate-only``: under
the shipped ones, no fit).
``docs/simulator-accuracy.md`` records where the refit lands and why the shipped ones stay.

    .venv/bin/python scripts/fit_perf_model.py [--fit-on alpaca,cnn_dailymail]
        [--num-requests 1000] [--reference-lengths] [--evaluate-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from workload_eval import paper
from workload_eval.engines.sim import fitting, paper_runs
from workload_eval.engines.sim.calibration import PERF
from workload_eval.experiments.study import paper_tokens_per_request

SHARED = Path(__file__).resolve().parents[2] / "shared"


def paper_targets(n: int, calibration: Path) -> list[fitting.OfflineTarget]:
    doc = json.loads((calibration / "opt-13b-offline.json").read_text())
    return [
        fitting.OfflineTarget(w, e["kv_blocks"], n, e["by_num_requests"][str(n)]["request"])
        for w in paper.WORKLOADS
        for e in doc["data"][w]
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-requests", type=int, default=1000)
    ap.add_argument("--evaluate-only", action="store_true")
    ap.add_argument(
        "--reference-lengths",
        action="store_true",
        help="use the datasets' reference output lengths, not EOS-matched ones",
    )
    ap.add_argument(
        "--fit-on",
        default="alpaca,cnn_dailymail",
        help="comma-separated workloads whose points drive the fit (the others are held out)",
    )
    ap.add_argument("--calibration-dir", type=Path, default=SHARED / "calibration")
    ap.add_argument("--data-dir", type=Path, default=SHARED / "datasets")
    ap.add_argument("--tokenizer-dir", type=Path, default=SHARED / "tokenizers")
    args = ap.parse_args()
    n = args.num_requests
    tokens = paper_tokens_per_request(args.calibration_dir)
    frames = {
        (w, n): paper_runs.paper_workload(
            w,
            n,
            None if args.reference_lengths else f"eos:{tokens[w]:.1f}",
            data_dir=args.data_dir,
            tokenizer_dir=args.tokenizer_dir,
        )
        for w in paper.WORKLOADS
    }
    all_targets = paper_targets(n, args.calibration_dir)
    fit_on = args.fit_on.split(",")
    targets = [t for t in all_targets if t.workload in fit_on]
    best = PERF
    if not args.evaluate_only:
        result = fitting.fit_overheads(targets, frames)
        best = result.constants
        print(
            f"fit on {len(targets)} points ({result.simulated_runs} simulated runs): "
            f"loss {result.start_loss:.6f} (shipped constants) -> {result.loss:.6f}"
        )
    predicted = [s["request_throughput"] for s in fitting.predict(best, all_targets, frames)]
    errs = []
    for t, sim in zip(all_targets, predicted, strict=True):
        errs.append(sim / t.request_throughput - 1)
        held = "" if t.workload in fit_on else "  (held out)"
        print(
            f"{t.workload:14s} {t.kv_blocks:4d}  paper {t.request_throughput:7.3f}  "
            f"sim {sim:7.3f}  err {errs[-1]:+.1%}{held}"
        )
    fit = [abs(e) for e, t in zip(errs, all_targets, strict=True) if t.workload in fit_on]
    print(
        f"median |error| {np.median(np.abs(errs)):.2%} (fit points {np.median(fit):.2%}); "
        + ", ".join(f"{k}={fitting.fitted_value(best, k) * 1e3:.4f} ms" for k in fitting.FITTED)
    )


if __name__ == "__main__":
    sys.exit(main())
