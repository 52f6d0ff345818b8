"""Load-generator outcomes -> RunRecords, and the verdict on whether the schedule was kept."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, RunRecords
from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.options import redact
from workload_eval.engines.openai.plan import RequestPlan
from workload_eval.engines.openai.prometheus import Timeline
from workload_eval.engines.openai.report import LoadgenReport, OpenAIReport
from workload_eval.engines.openai.stream import error_text
from workload_eval.workloads.synthesizer import prompt_digest

# The openai engine's own columns of requests.parquet, after the contract's: which side a
# failure was on ("client": never reached the server; "server"), and how many sends it took
# (2: the first met a stale keep-alive connection and was sent again on a fresh one).
EXTRA_COLUMNS = ("error_side", "attempts")


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else math.nan


def loadgen_report(
    plan: RequestPlan, res: loadgen.LoadResult, timeline: Timeline, counts: Counts
) -> LoadgenReport:
    """Was the schedule kept, and do the answers agree with the workload? Dispatch lag,
    achieved vs target send rate, token-count disagreements, and the verdict."""
    sched = np.asarray(res.scheduled, dtype=float)
    sends = np.array(
        [o.send_time - res.t0 if o is not None else math.nan for o in res.outcomes], dtype=float
    )
    sent = ~np.isnan(sends)
    lag = sends[sent] - sched[sent]
    roots = np.array([p is None for p in plan.schedule.graph.parents], dtype=bool)
    target = achieved = math.nan
    rs = np.sort(sched[roots & ~np.isnan(sched)])
    if len(rs) > 1 and rs[-1] - rs[0] > 0:
        ss = np.sort(sends[roots & sent])
        if len(ss) > 1 and ss[-1] > ss[0]:
            achieved = float((len(ss) - 1) / (ss[-1] - ss[0]))
        # a closed loop has no target rate: its sends follow the server's answers
        if plan.schedule.concurrency is None:
            target = float((len(rs) - 1) / (rs[-1] - rs[0]))
    reasons = []
    if res.interrupted:
        reasons.append("interrupted")
    p99 = _pct(lag, 99)
    if p99 > plan.opts.max_lag_p99:
        reasons.append(f"dispatch lag p99 {p99 * 1e3:.1f} ms > {plan.opts.max_lag_p99 * 1e3:g} ms")
    if not math.isnan(target) and (
        math.isnan(achieved) or abs(achieved / target - 1) > plan.opts.rate_tolerance
    ):
        reasons.append(f"achieved send rate {achieved:.2f}/s vs target {target:.2f}/s")
    n_ok = sum(1 for o in res.outcomes if o is not None and o.status == "ok")
    reasons += counts.reasons(plan, n_ok, len(res.outcomes))
    return LoadgenReport(
        client="workload_eval.engines.openai.loadgen (http_client: asyncio + httptools)",
        workers=res.workers,
        requests=len(res.outcomes),
        sent=int(sent.sum()),
        ok=n_ok,
        not_sent=int((~sent).sum()),
        dispatch_lag_p50=_pct(lag, 50),
        dispatch_lag_p99=p99,
        dispatch_lag_max=float(lag.max()) if len(lag) else math.nan,
        target_rate=target,
        achieved_rate=achieved,
        valid=not reasons,
        invalid_reason="; ".join(reasons),
        interrupted=res.interrupted,
        wall_s=res.wall_s,
        client_cpu_s=res.cpu_s,
        metrics_samples=len(timeline.rows),
        server_preemptions=timeline.preemptions,
        output_token_mismatches=counts.output,
        prompt_token_mismatches=counts.prompt,
        usage_mismatches=counts.usage,
        stale_connection_retries=counts.stale_retries,
        failed_client_side=counts.client,
        failed_server_side=counts.server,
    )


@dataclass
class Counts:
    """Requests whose answers disagree with the workload, and failures by side."""

    output: int = 0  # completed with another number of tokens than the workload's
    prompt: int = 0  # the server counted (or saw) another prompt than the one sent
    usage: int = 0  # the server's usage disagreed with the tokens it streamed
    stale_retries: int = 0
    client: int = 0
    server: int = 0

    def reasons(self, plan: RequestPlan, ok: int, total: int) -> list[str]:
        """Why the token counts make the run invalid (empty: they do not)."""
        out = []
        if total and not ok:
            out.append(f"no request succeeded ({total} failed)")
        exact = plan.opts.ignore_eos or plan.opts.min_tokens  # outputs follow the workload
        if self.output and exact:
            out.append(
                f"{self.output} of {ok} completed requests generated another number of tokens "
                "than the workload asked for"
            )
        if self.prompt:
            out.append(f"{self.prompt} prompts were counted or seen differently by the server")
        if self.usage:
            out.append(f"{self.usage} answers' usage disagreed with the tokens streamed")
        return out


def build_records(plan: RequestPlan, res: loadgen.LoadResult, timeline: Timeline) -> RunRecords:
    """One row per scheduled request (never sent ones included), the sampled timeline as
    steps. Token counts are what was streamed (and, for token-id prompts, what was sent);
    the server's usage only flags disagreements."""
    rows = []
    counts = Counts()
    t0 = res.t0
    for i, it in enumerate(plan.schedule.items):
        req, o = it.request, res.outcomes[i]
        if o is None:
            o = loadgen.Outcome(status="failed", error="not sent (run interrupted)", side="client")
        ok = o.status == "ok"
        generated = o.completion_tokens if o.completion_tokens is not None else len(o.token_times)
        sent = plan.sent_ids[i]
        claimed = o.prompt_tokens  # the server's count (validated and bounded)
        if sent is not None:
            prompt_tokens = len(sent)
        else:
            prompt_tokens = claimed if claimed is not None else req.prompt_len
        if ok and generated != req.output_len * plan.config.n:
            counts.output += 1
        seen = o.prompt_token_ids  # the server's own view, when it reports it
        if (
            ok
            and sent is not None
            and (claimed not in (None, len(sent)) or seen not in (None, sent))
        ):
            counts.prompt += 1
        counts.usage += ok and o.usage_mismatch
        counts.stale_retries += o.attempts > 1  # met a stale pooled connection, sent again
        if not ok:
            side = o.side or "client"
            counts.client += side == "client"
            counts.server += side == "server"
        view = seen if seen is not None else sent
        rows.append(
            {
                "request_id": req.request_id,
                "workload": req.workload,
                "session_id": req.session_id,
                "turn": req.turn,
                "arrival_time": res.scheduled[i],
                "send_time": o.send_time - t0,
                "first_token_time": o.first_token_time - t0,
                "finish_time": o.finish_time - t0 if ok else math.nan,
                "prompt_tokens": int(prompt_tokens),
                "generated_tokens": int(generated),
                "expected_output_tokens": req.output_len,
                "num_preemptions": 0,  # a server does not say per request; see the step timeline
                "status": "ok" if ok else "failed",
                "error": "" if ok else error_text(o.error or "failed"),
                "token_times": [t - t0 for t in o.token_times],
                "prompt_digest": prompt_digest(view) if view is not None else "",
                "error_side": "" if ok else (o.side or "client"),
                "attempts": o.attempts,
            }
        )
    requests = pd.DataFrame(rows, columns=[*REQUEST_COLUMNS, *EXTRA_COLUMNS])
    requests["session_id"] = requests["session_id"].astype("Int64")
    steps = pd.DataFrame(timeline.rows, columns=list(STEP_COLUMNS))
    report = OpenAIReport(
        options=plan.opts.model_copy(update={"base_url": redact(plan.opts.base_url)}),
        kv_blocks=_server_kv_blocks(timeline, plan.config.kv_blocks),
        interrupted=res.interrupted,
        loadgen=loadgen_report(plan, res, timeline, counts),
    )
    return RunRecords(requests=requests, steps=steps, report=report)


def _server_kv_blocks(timeline: Timeline, configured: int | None) -> int | None:
    """The server's KV blocks as its /metrics said (vllm:cache_config_info), else the config's."""
    totals = [r["kv_blocks_total"] for r in timeline.rows]
    known = [float(t) for t in totals if isinstance(t, float | int) and not math.isnan(t)]
    return int(known[-1]) if known else configured
