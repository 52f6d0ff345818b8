"""What ``validate`` shows and writes: console tables, CSVs, summary.json and the figure."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from workload_eval.storage import atomic_write_json, atomic_write_text
from workload_eval.validation.corpus import METRICS
from workload_eval.validation.run import ExperimentResult
from workload_eval.validation.scoring import Cell, by_key, error_summary

_SHORT = {
    "ttft_mean": "TTFT mean",
    "ttft_p50": "p50",
    "ttft_p90": "p90",
    "ttft_p99": "p99",
    "e2e_mean": "e2e mean",
    "e2e_p50": "p50",
    "e2e_p90": "p90",
    "e2e_p99": "p99",
    "decode_time_per_token_mean": "decode/tok",
}


def _ms(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    ms = v * 1e3
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"


def _err(e: float) -> str:
    if not math.isfinite(e):
        return "-"
    colour = "red" if abs(e) > 0.25 else "yellow" if abs(e) > 0.10 else "green"
    return f"[{colour}]{e * 100:+.0f}%[/{colour}]"


def _pct(v: object) -> str:
    return f"{float(v):.1f}%" if isinstance(v, float | int) and math.isfinite(v) else "-"


def experiment_table(res: ExperimentResult) -> Table:
    """One row per stage; each cell: measured, simulated (ms) and the signed error."""
    title = f"{res.id}  [{res.status}]  {res.model} on {res.gpu}, {res.policy}"
    table = Table(title=title, title_justify="left", show_lines=True)
    table.add_column("stage", justify="right")
    table.add_column("req/s", justify="right")
    for m in METRICS:
        table.add_column(_SHORT[m], justify="right")
    by_stage: dict[int, dict[str, Cell]] = {}
    for c in res.cells:
        by_stage.setdefault(c.stage, {})[c.metric] = c
    for stage in sorted(by_stage):
        cells = by_stage[stage]
        row = []
        for m in METRICS:
            c = cells.get(m)
            row.append(
                "" if c is None else f"{_ms(c.measured)}\n{_ms(c.predicted)}\n{_err(c.error)}"
            )
        rate = res.stage_rates[stage] if stage < len(res.stage_rates) else None
        scored = any(c.scored for c in cells.values())
        label = f"{stage}" if scored else f"{stage}\n(not\nscored)"
        table.add_row(label, "-" if rate is None else f"{rate:g}", *row)
    table.caption = "each cell: measured ms / simulated ms / error = simulated/measured - 1"
    return table


def summary_table(title: str, summary: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("metric", "cells", "median |err|", "mean |err|", "median err"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    per_metric: dict[str, dict[str, Any]] = summary["per_metric"]  # type: ignore[assignment]
    rows = [*per_metric.items(), ("overall", summary["overall"])]
    for name, s in rows:
        table.add_row(
            name,
            str(s["cells"]),
            _pct(s["median_abs_pct"]),
            _pct(s["mean_abs_pct"]),
            _pct(s.get("median_signed_pct", math.nan)),
        )
    return table


def peer_comparison(results: list[ExperimentResult]) -> dict[str, dict[str, Any]]:
    """Each peer's error and ours on exactly the cells it predicted (scored cells only)."""
    ours = {(c.id, c.stage, c.metric): c for r in results for c in r.cells}
    out: dict[str, dict[str, Any]] = {}
    names = sorted({name for r in results for name in r.peers})
    for name in names:
        cells = [c for r in results for c in r.peers.get(name, []) if c.scored]
        mine = [ours[k] for k in ((c.id, c.stage, c.metric) for c in cells) if k in ours]
        covered = [c for c in mine if c.predicted is not None and c.scored]
        out[name] = {
            "peer": error_summary(cells),
            "ours_on_the_same_cells": error_summary(covered),
            "cells_we_did_not_simulate": len(cells) - len(covered),
        }
    return out


def print_report(console: Console, results: list[ExperimentResult]) -> None:
    for res in results:
        if res.simulated:
            console.print(experiment_table(res))
            for gap in res.gaps:
                console.print(
                    f"  stage {gap.stage - 1} -> {gap.stage}: idle between last and first send "
                    f"observed {gap.observed_s:.2f} s, simulated {gap.simulated_s:.2f} s"
                )
            for note in dict.fromkeys(res.notes):
                console.print(f"  note: {note}")
            if res.reason:
                console.print(f"  {res.reason}")
    cells = [c for r in results for c in r.cells]
    console.print(summary_table("Simulator vs measured (status ok, stages not overloaded)",
                                error_summary(cells)))  # fmt: skip
    fam = by_key(cells, "family")
    if len(fam) > 1:
        t = Table(title="Per model family", title_justify="left")
        for col in ("family", "cells", "median |err|", "mean |err|"):
            t.add_column(col, justify="left" if col == "family" else "right")
        for name, s in fam.items():
            o = s["overall"]
            if o["cells"]:  # type: ignore[index]
                t.add_row(name, str(o["cells"]), _pct(o["median_abs_pct"]), _pct(o["mean_abs_pct"]))  # type: ignore[index]
        console.print(t)
    for name, cmp in peer_comparison(results).items():
        p, o = cmp["peer"]["overall"], cmp["ours_on_the_same_cells"]["overall"]
        console.print(
            f"peer {name}: median |err| {_pct(p['median_abs_pct'])} over {p['cells']} cells; "
            f"ours on the same cells {_pct(o['median_abs_pct'])} over {o['cells']} cells"
        )
    skipped = [r for r in results if not r.simulated]
    if skipped:
        console.print(f"Not simulated ({len(skipped)}):")
        for r in skipped:
            console.print(f"  {r.id}: {r.reason}", soft_wrap=True)
    console.print(_counts_line(results))


def counts(results: list[ExperimentResult]) -> dict[str, int]:
    return {
        "files": len(results),
        "invalid": sum(r.status == "invalid" for r in results),
        "simulated": sum(r.simulated for r in results),
        "not_simulatable": sum(not r.simulated and r.status != "invalid" for r in results),
        "scored_experiments": sum(any(c.scored for c in r.cells) for r in results),
        "scored_cells": sum(c.scored for r in results for c in r.cells),
    }


def _counts_line(results: list[ExperimentResult]) -> str:
    n = counts(results)
    return (
        f"{n['files']} files: {n['simulated']} simulated, {n['not_simulatable']} not simulatable, "
        f"{n['invalid']} invalid; {n['scored_cells']} cells scored over "
        f"{n['scored_experiments']} experiments"
    )


def _csv(rows: list[list[object]], header: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def _num(v: float | None) -> str:
    return "" if v is None or not math.isfinite(v) else repr(float(v))


def write_outputs(out: Path, results: list[ExperimentResult], meta: dict[str, Any]) -> list[Path]:
    """cells.csv, peers.csv, experiments.csv, summary.json and the figure under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    cells = [c for r in results for c in r.cells]
    rows = [[c.id, c.stage, c.metric, _num(c.measured), _num(c.predicted), _num(c.error)]
            for c in cells]  # fmt: skip
    header = ["id", "stage", "metric", "measured", "predicted", "error"]
    atomic_write_text(out / "cells.csv", _csv(rows, header))
    peer_rows = [
        [c.id, c.stage, c.metric, _num(c.measured), _num(c.predicted), _num(c.error), name]
        for r in results
        for name, pcs in r.peers.items()
        for c in pcs
    ]
    written = [out / "cells.csv"]
    if peer_rows:
        atomic_write_text(out / "peers.csv", _csv(peer_rows, [*header, "peer"]))
        written.append(out / "peers.csv")
    exp_rows = [[r.id, r.status, str(r.simulated).lower(), r.reason] for r in results]
    atomic_write_text(
        out / "experiments.csv", _csv(exp_rows, ["id", "status", "simulated", "reason"])
    )
    summary = {
        **meta,
        "counts": counts(results),
        "scoring": (
            "cells of status-ok experiments, stages not overloaded; error = predicted/measured - 1"
        ),
        "summary": error_summary(cells),
        "per_family": by_key(cells, "family"),
        "per_experiment": {k: v["overall"] for k, v in by_key(cells, "id").items()},
        "peers": peer_comparison(results),
        "experiments": [
            {
                "id": r.id,
                "status": r.status,
                "simulated": r.simulated,
                "reason": r.reason,
                "family": r.family,
                "policy": r.policy,
                "measurement_point": r.measurement_point,
                "defaults_used": r.defaults_used,
                "notes": list(dict.fromkeys(r.notes)),
                "requests_simulated": r.num_requests,
                "stage_gaps": [g.__dict__ for g in r.gaps],
                "wall_seconds": round(r.wall_seconds, 3),
            }
            for r in results
        ],
    }
    atomic_write_json(out / "summary.json", summary)
    written += [out / "experiments.csv", out / "summary.json"]
    written += _figure(out, cells)
    return written


def _figure(out: Path, cells: list[Cell]) -> list[Path]:
    """Measured vs predicted, log-log, one colour per model family, y = x and +-10%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workload_eval.report.style import MODEL_COLORS

    pts = [c for c in cells if c.scored and c.predicted and c.predicted > 0]
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    families = sorted({c.family for c in pts})
    markers = {"ttft": "o", "e2e": "s", "decode": "^"}
    for i, fam in enumerate(families):
        colour = MODEL_COLORS[i % len(MODEL_COLORS)]
        label: str | None = fam
        for kind, marker in markers.items():
            sel = [c for c in pts if c.family == fam and c.metric.startswith(kind)]
            if sel:
                ax.scatter(
                    [c.measured for c in sel],
                    [c.predicted for c in sel],
                    s=18,
                    marker=marker,
                    color=colour,
                    alpha=0.8,
                    label=label,
                )
                label = None
    if pts:
        lo = min(min(c.measured for c in pts), min(c.predicted for c in pts))  # type: ignore[type-var]
        hi = max(max(c.measured for c in pts), max(c.predicted for c in pts))  # type: ignore[type-var]
        xs = [lo / 1.5, hi * 1.5]
        ax.plot(xs, xs, color="#141414", lw=1)
        for f in (0.9, 1.1):
            ax.plot(xs, [x * f for x in xs], color="#888888", lw=0.8, ls="--")
        ax.set_xlim(*xs)
        ax.set_ylim(*xs)
        ax.legend(title="model family (o TTFT, s e2e, ^ decode/token)", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured (s)")
    ax.set_ylabel("simulated (s)")
    ax.set_title(f"Simulator vs measured: {len(pts)} scored cells (dashed: +-10%)")
    fig.tight_layout()
    path = out / "measured_vs_predicted.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [path]
