"""Expand a spec into runs: fixed points (RunSpecs) and capacity searches (one per config)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from pydantic import JsonValue

from workload_eval.analysis.intervals import metric_statistic, min_values
from workload_eval.engines.base import EngineConfig, options_model
from workload_eval.errors import UserError
from workload_eval.experiments.capacity import CapacitySearch, make_search
from workload_eval.experiments.spec import CapacityOptions, EngineEntry, ExperimentSpec, GridSpec
from workload_eval.limits import check_request_count, max_requests
from workload_eval.redaction import scrub_json
from workload_eval.results import canonical_json
from workload_eval.runner import RunSpec
from workload_eval.slo import SLO, per_request, run_level

# RunSpec fields that locate inputs on this machine rather than define the run.
LOCATION_FIELDS = ("data_dir", "tokenizer_dir")


def run_spec_json(spec: RunSpec | Mapping[str, JsonValue]) -> dict[str, JsonValue]:
    """The RunSpec as plain JSON data, without machine-local paths and credentials (a
    password in a base URL does not change the experiment, and is never hashed or stored)."""
    data = spec.model_dump(mode="json") if isinstance(spec, RunSpec) else dict(spec)
    if data.get("output_len_model") is None:  # the default: keys of older stores stay valid
        data.pop("output_len_model", None)
    plain = {k: v for k, v in data.items() if k not in LOCATION_FIELDS}
    return cast(dict[str, JsonValue], scrub_json(plain))


def point_key(spec: RunSpec | Mapping[str, JsonValue]) -> str:
    """Stable short hash of the point's full canonical RunSpec (16 hex digits)."""
    return hashlib.sha256(canonical_json(run_spec_json(spec)).encode()).hexdigest()[:16]


def make_run_spec(data: dict[str, Any]) -> RunSpec:
    return RunSpec.model_validate(data)


@dataclass(frozen=True)
class Point:
    """One run of the study, with where it came from in the spec."""

    group: str
    engine_label: str
    spec: RunSpec

    @property
    def key(self) -> str:
        return point_key(self.spec)


def confidence_floor(
    slos: tuple[SLO, ...], confidence: float | None, duration: float | None
) -> float:
    """The lowest rate whose probes hold enough requests for an interval of every bound's
    metric (analysis.intervals: e.g. 200 for a p95); 0 without a confidence. Below it a
    verdict at the confidence is impossible, however low the latency. The 25% margin covers
    the randomness of the arrival count (a Poisson count of mean 250 falls below 200 with
    probability 0.1%)."""
    if confidence is None or not duration:
        return 0.0
    needed = 0
    for s in run_level(slos):
        stat = metric_statistic(s.metric)
        if stat is not False:
            needed = max(needed, min_values(stat))
    return ARRIVAL_MARGIN * needed / duration


ARRIVAL_MARGIN = 1.25  # see confidence_floor


@dataclass(frozen=True)
class CapacityTask:
    """One capacity search: a configuration whose schedule rate the search picks."""

    group: str
    engine_label: str
    base: dict[str, Any]  # RunSpec data; schedule without rate; seed set per probe
    slos: tuple[SLO, ...]
    options: CapacityOptions
    seeds: tuple[int, ...]

    @property
    def searched(self) -> str:
        """What the search varies: a rate, or a closed loop's users (``concurrency``)."""
        return "concurrency" if self.base["schedule"].get("kind") == "concurrency" else "rate"

    def run_spec(self, rate: float, seed: int) -> RunSpec:
        data = json.loads(json.dumps(self.base))
        if self.searched == "concurrency":
            data["schedule"]["concurrency"] = round(rate)
        else:
            data["schedule"]["rate"] = rate
        data["seed"] = seed
        data["engine_config"]["seed"] = seed
        return make_run_spec(data)

    def make_search(self) -> CapacitySearch:
        o = self.options
        if self.searched == "concurrency":  # users: whole numbers, at most one per request
            n = self.base["schedule"].get("num_requests")
            return make_search(
                list(self.slos),
                rule=o.rule,
                rates=o.grid(),
                start=o.start,
                seeds=self.seeds,
                aggregate=o.aggregate,
                repeat_band=o.repeat_band,
                max_rate=min(o.max_rate, n) if n else o.max_rate,
                min_rate=1,
                integer=True,
            )
        duration = self.base["schedule"].get("duration")
        # below this a probe would hold too few arrivals to judge (5 over the duration)
        min_rate = max(1e-3, 5.0 / duration) if duration else 1e-3
        floor = confidence_floor(self.slos, o.confidence, duration)
        # above this a probe would hold more requests than a run may (limits): the search
        # stops there and says so (censored), rather than fail on the probe
        max_rate = min(o.max_rate, max_requests() / duration) if duration else o.max_rate
        workload, kv = self.base.get("workload"), self.base["engine_config"].get("kv_blocks")
        grid = o.grid(workload, kv)
        if o.rule == "seed-grid" and not grid and isinstance(o.rates, dict):
            raise UserError(
                f"capacity: the seed-grid rates name no grid for workload {workload!r} at "
                f"{kv} KV blocks (expected rates.{workload}: a list, or one per KV size)"
            )
        if grid and duration:  # an explicit grid is the user's: a rate past the limit is refused
            check_request_count(
                max(grid) * duration, what=f"rate {max(grid):g}/s over {duration:g} s"
            )
        if grid and floor > 0 and min(grid) < floor and o.confidence is not None:
            # such a probe could never be met at the confidence: the rule would read it as a
            # violation, a silently wrong answer
            raise UserError(
                f"capacity: the grid's rate {min(grid):g} req/s over {duration:g} s gives too "
                f"few requests for a {o.confidence:.0%} interval of every SLO metric (needs "
                f">= {floor:.4g} req/s): raise the grid, lengthen the duration, or set "
                "confidence none"
            )
        return make_search(
            list(self.slos),
            rule=o.rule,
            rates=grid,
            extend=o.extend,
            tolerance=o.tolerance,
            start=o.start,
            seeds=self.seeds,
            aggregate=o.aggregate,
            repeat_band=o.repeat_band,
            confidence=o.confidence,
            max_rate=max_rate,
            # an explicit low start is honoured, but not below what an interval needs
            min_rate=max(min(min_rate, o.start), floor),
        )

    def _own_options(self) -> dict[str, Any]:
        """The options as they apply to this search: its own grid of a per-workload mapping;
        ``extend`` and ``confidence`` only when set (keys of stores written before them stay
        valid)."""
        options = self.options.key_data()  # without a confidence: as before it existed
        if not options.get("extend"):
            options.pop("extend", None)
        if isinstance(self.options.rates, dict):
            options["rates"] = self.options.grid(
                self.base.get("workload"), self.base["engine_config"].get("kv_blocks")
            )
        return options

    @property
    def key(self) -> str:
        ident = {
            "base": {k: v for k, v in self.base.items() if k not in LOCATION_FIELDS},
            "slos": [s.model_dump() for s in self.slos],
            "options": self._own_options(),
            "seeds": list(self.seeds),
        }
        return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:16]


def _base_data(
    grid: GridSpec,
    engine: EngineEntry,
    model: str,
    gpu: str,
    kv: dict[str, Any],
    workload: str,
    schedule: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    options = dict(engine.options)
    if "gpu" in options_model(engine.engine).model_fields:  # the gpus axis is the sim's
        options["gpu"] = gpu
    config = EngineConfig(model=model, **engine.config_knobs, **kv, seed=seed, options=options)
    data: dict[str, Any] = {
        "engine": engine.engine,
        "engine_config": config.model_dump(mode="json"),
        "workload": workload,
        "schedule": schedule,
        "seed": seed,
        "sampling": grid.sampling,
        "source": grid.source,
    }
    model = grid.output_len_model
    if isinstance(model, dict):
        model = model.get(workload)
    if model is not None:
        data["output_len_model"] = model
    for attr in LOCATION_FIELDS:
        if getattr(grid, attr) is not None:
            data[attr] = getattr(grid, attr)
    return data


def expand_group(grid: GridSpec) -> tuple[list[Point], list[CapacityTask]]:
    points: list[Point] = []
    tasks: list[CapacityTask] = []
    axes = itertools.product(grid.engines, grid.models, grid.gpus, grid.kv_sizes(), grid.workloads)
    for engine, model, gpu, kv, workload in axes:
        for entry in grid.schedules:
            for schedule in entry.expand():
                if entry.is_capacity:
                    base = _base_data(grid, engine, model, gpu, kv, workload, schedule, 0)
                    if per_request(grid.slos):  # probes then report goodput, slo_attainment
                        base["slo"] = [str(s) for s in per_request(grid.slos)]
                    tasks.append(
                        CapacityTask(
                            grid.name,
                            engine.name,
                            base,
                            tuple(grid.slos),
                            grid.capacity,
                            tuple(grid.seeds),
                        )
                    )
                    continue
                for seed in grid.seeds:
                    data = _base_data(grid, engine, model, gpu, kv, workload, schedule, seed)
                    points.append(Point(grid.name, engine.name, make_run_spec(data)))
    return points, tasks


def expand(spec: ExperimentSpec) -> tuple[list[Point], list[CapacityTask]]:
    """Every group's points and capacity searches, duplicates (same key) kept once."""
    points: dict[str, Point] = {}
    tasks: dict[str, CapacityTask] = {}
    for grid in spec.groups:
        ps, ts = expand_group(grid)
        for p in ps:
            points.setdefault(p.key, p)
        for t in ts:
            tasks.setdefault(t.key, t)
    return list(points.values()), list(tasks.values())
