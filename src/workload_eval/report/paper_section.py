"""The report's paper part: the claims first, then agreement per figure, then the workload
correction the comparison rests on, with the labels every caption and CSV carries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workload_eval import paper
from workload_eval.experiments.paper_plan import StudyRecord, read_record
from workload_eval.paper_data import PaperTables
from workload_eval.report import agreement as agree
from workload_eval.report import claims
from workload_eval.report.conditioning import Conditioning, repeat_spreads, rule_conditioning
from workload_eval.report.paper import paper_capacity
from workload_eval.results import CONFIG_JSON, offline_points

CORRECTION = (
    "What the output-length correction is: the paper's engine (a vLLM 0.2.1 fork) sampled "
    "without ignore_eos, so its outputs stopped at EOS, often long before the datasets' "
    "reference outputs. Each workload's outputs are cut by the eos output-length model so "
    "that its mean prompt + output tokens per request equals what the paper measured for "
    "the same N, with a share of very short outputs derived from the paper's light-load "
    "latency (the same rule for every workload; prompts are stretched where the paper's "
    "data held more tokens than ours even before any cut). What it is not: an engine "
    "change. No simulator constant moves; the same calibrated simulator runs "
    "--output-len-model reference, the datasets' own outputs."
)


@dataclass
class PaperSection:
    label: str  # the output lengths, as every caption and CSV names them
    capacity_rule: str
    checks: list[claims.ClaimCheck]
    agreement: list[agree.Agreement]
    stop_models: pd.DataFrame = field(default_factory=pd.DataFrame)
    tables: list[str] = field(default_factory=list)
    conditioning: list[Conditioning] = field(default_factory=list)  # the paper's capacities

    def claim_lines(self) -> list[str]:
        return claims.claim_lines(self.checks, self.label)

    def agreement_lines(self) -> list[str]:
        return ["PAPER VS OURS, PER FIGURE", *(a.line() for a in self.agreement)]


def output_len_model_of(config_json: str) -> str:
    """The output-length model a stored point ran with (its run record's spec; ``reference``
    when none)."""
    try:
        config = json.loads(config_json)
    except (TypeError, ValueError):
        return "reference"
    spec = config.get("spec", config) if isinstance(config, dict) else None
    value = spec.get("output_len_model") if isinstance(spec, dict) else None
    return str(value) if value else "reference"


def lengths_label(points: pd.DataFrame, record: StudyRecord | None) -> str:
    if record is not None:
        return record.label
    models = {output_len_model_of(c) for c in points.get(CONFIG_JSON, [])}
    if models <= {"reference"}:
        return "reference output lengths (ignore_eos)"
    return "output-length models " + ", ".join(sorted(models))


def rule_note(capacity: pd.DataFrame, record: StudyRecord | None) -> str:
    """Which rule produced the capacities: from the capacity table itself."""
    rules = capacity["rule"].fillna("").astype(str) if "rule" in capacity else None
    n = len(capacity)
    if rules is None or (rules == "").all():
        return f"the paper's rule ({paper.CAPACITY_RULE}) over the probed rates"
    parts = []
    for rule, count in rules.value_counts().items():
        if rule == "seed-grid":
            text = (
                record.capacity_rule
                if record is not None
                else f"the paper's rule ({paper.CAPACITY_RULE}) on a rate grid"
            )
        elif rule == "bisect":
            text = "bisection of the rate (not the paper's rule)"
        else:
            text = rule
        parts.append(f"{text}: {count} of {n} configurations")
    return "; ".join(parts)


def build_section(
    results_dir: Path,
    points: pd.DataFrame,
    capacity: pd.DataFrame,
    comparison: pd.DataFrame,
    tables: PaperTables,
) -> PaperSection:
    record = read_record(results_dir)
    paper_off, paper_on = tables.offline(), tables.online()
    checks = claims.check_claims(
        offline_points(points), capacity, paper_off, paper_capacity(paper_on)
    )
    stops = pd.DataFrame([r.model_dump() for r in record.stop_models]) if record else None
    if stops is not None and not stops.empty:
        specs = stops.pop("specs").apply(lambda d: "; ".join(f"{k}: {v}" for k, v in d.items()))
        stops["output_len_models"] = specs
    conditioning = rule_conditioning(paper_on)
    return PaperSection(
        label=lengths_label(points, record),
        capacity_rule=rule_note(capacity, record),
        checks=checks,
        agreement=agree.agreement(comparison, conditioning, repeat_spreads(tables)),
        stop_models=stops if stops is not None else pd.DataFrame(),
        tables=tables.sources(),
        conditioning=conditioning,
    )


def _x(v: float) -> str:
    return f"{v:.2f}×" if pd.notna(v) else "n/a"


def claim_rows(section: PaperSection) -> list[dict[str, object]]:
    """The claims as the HTML table shows them: one block per claim, one row per unit."""
    rows = []
    for claim in claims.CLAIMS:
        checks = [c for c in section.checks if c.claim is claim]
        rows.append(
            {
                "quote": claim.quote,
                "checks": [
                    {
                        "unit": c.measure.unit,
                        "figure": c.measure.figure,
                        "definition": c.measure.definition,
                        "stated": f"{claim.factor:g}×",
                        "paper": _x(c.paper),
                        "ours": _x(c.ours),
                        "per_model": ", ".join(f"{m} {_x(v)}" for m, v in c.ours_by_model.items()),
                        "verdict": c.verdict,
                    }
                    for c in checks
                ],
            }
        )
    return rows
