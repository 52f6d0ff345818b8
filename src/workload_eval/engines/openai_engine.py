"""Drives any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, ...) with a schedule.

Token-id prompts where the server accepts them, ``max_tokens`` + ``ignore_eos`` so outputs
follow the workload, streaming for TTFT/ITL, the server's ``usage`` for token counts, its
Prometheus ``/metrics`` sampled into the step timeline. Failures become records, never crashes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workload_eval import loadgen
from workload_eval.contracts import REQUEST_COLUMNS, STEP_COLUMNS, Request, RunRecords, Schedule
from workload_eval.engines.base import Engine, EngineConfig
from workload_eval.errors import UserError
from workload_eval.limits import MAX_INT
from workload_eval.prometheus import Timeline, parse_metrics

SYNTH_TOKEN_BASE = 1000  # synthesized prompts avoid the special and byte tokens of small vocabs
SYNTH_TOKEN_SPAN = 20000


class OpenAIOptions(BaseModel):
    """``EngineConfig.options`` of the openai engine (CLI: --base-url, --api-key-env, ...)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_url: str
    api_key_env: str | None = None  # name of the env var holding the key; the key is never stored
    endpoint: Literal["completions", "chat"] = "completions"
    max_concurrency: int | None = Field(default=None, gt=0, le=MAX_INT)
    request_timeout: float = Field(default=600.0, gt=0)  # s, per request
    prompt_format: Literal["auto", "token_ids", "text"] = "auto"
    stream: bool = True
    ignore_eos: bool = True  # vLLM's extension; outputs then follow the workload's lengths
    continuous_usage: bool = True  # vLLM's per-chunk usage: exact per-token times when merged
    min_tokens: bool = False  # also send min_tokens = max_tokens (servers without ignore_eos)
    tokenizer: str | None = None  # HF tokenizer to decode token ids when text is needed
    extra_body: dict[str, Any] = Field(default_factory=dict)
    metrics: bool = True
    metrics_url: str | None = None  # default: <server root>/metrics
    metrics_interval: float = Field(default=0.5, gt=0)
    max_lag_p99: float = Field(default=0.010, gt=0)  # s; above it the run is flagged invalid
    rate_tolerance: float = Field(default=0.05, gt=0, lt=1)  # |achieved/target - 1| allowed


def parse_options(options: dict[str, Any]) -> OpenAIOptions:
    """Validate the options; a mistake names the option and what was expected."""
    if "base_url" not in options:
        raise UserError("engine openai: --base-url is required (e.g. http://127.0.0.1:8000)")
    unknown = sorted(set(options) - set(OpenAIOptions.model_fields))
    if unknown:
        raise UserError(
            f"engine openai: unknown option {unknown[0]!r} (expected one of "
            f"{', '.join(OpenAIOptions.model_fields)})"
        )
    try:
        opts = OpenAIOptions.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "options"
        raise UserError(f"engine openai: option {where!r}: {err['msg']}") from None
    try:
        parts = urlsplit(opts.base_url)
        port = parts.port  # parses it: a bad port raises here, not mid-run
    except ValueError as e:
        raise UserError(f"--base-url {opts.base_url!r}: not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"--base-url {opts.base_url!r}: expected an http:// or https:// URL with a host"
            + (f" (port {port})" if port else "")
        )
    if opts.api_key_env and opts.api_key_env not in os.environ:
        raise UserError(f"--api-key-env {opts.api_key_env}: environment variable is not set")
    return opts


def api_root(base_url: str) -> str:
    """``http://h:p``, ``http://h:p/`` and ``http://h:p/v1`` all mean the same server."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def redact(url: str) -> str:
    """The URL without user:password, safe to store in results."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def synthetic_token_ids(req: Request) -> list[int]:
    """Deterministic prompt ids of the request's length (lengths-only workloads, as the seed)."""
    base = req.request_id * 7919
    return [SYNTH_TOKEN_BASE + (base + 31 * k) % SYNTH_TOKEN_SPAN for k in range(req.prompt_len)]


def synthetic_text(num_tokens: int) -> str:
    """About ``num_tokens`` tokens of text for servers that only take text."""
    return " ".join(["hi"] * max(1, num_tokens))


@dataclass
class _Plan:
    """Everything decided before the clock starts: jobs, URLs, pre-serialized bodies."""

    schedule: Schedule
    config: EngineConfig
    opts: OpenAIOptions
    jobs: list[loadgen.Job] = field(default_factory=list)
    bodies: list[bytes | None] = field(default_factory=list)
    sent_ids: list[int | None] = field(default_factory=list)  # prompt length when ids were sent
    user_text: list[str] = field(default_factory=list)  # this turn's user message (sessions)
    messages: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)  # completions history text
    _tokenizer: Any = None

    @property
    def chat(self) -> bool:
        return self.opts.endpoint == "chat"

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        # With an API key the bearer header authenticates; credentials in the URL would clash.
        base = redact(self.opts.base_url) if self.opts.api_key_env else self.opts.base_url
        return api_root(base) + path

    def build(self) -> None:
        index = {it.request.request_id: i for i, it in enumerate(self.schedule.items)}
        for i, it in enumerate(self.schedule.items):
            req = it.request
            parent = None
            if it.depends_on is not None:
                parent = index.get(it.depends_on)
                if parent is None:
                    raise UserError(
                        f"schedule item {i}: depends_on={it.depends_on} names no "
                        "request of the schedule"
                    )
            self.jobs.append(
                loadgen.Job(None if parent is not None else it.arrival_time, parent, it.think_time)
            )
            self.user_text.append("")
            self.sent_ids.append(None)
            self.bodies.append(None if parent is not None else self._first_body(i, req))

    def _payload(self, req: Request) -> dict[str, Any]:
        p: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": req.output_len,
            "stream": self.opts.stream,
        }
        if self.opts.stream:
            p["stream_options"] = {"include_usage": True}
            if self.opts.continuous_usage:
                p["stream_options"]["continuous_usage_stats"] = True
        if self.opts.ignore_eos:
            p["ignore_eos"] = True
        if self.opts.min_tokens:
            p["min_tokens"] = req.output_len
        if self.config.n > 1:
            p["n"] = self.config.n
        p.update(self.opts.extra_body)
        return p

    def _text(self, req: Request, num_tokens: int | None = None) -> str:
        if req.prompt_text is not None:
            return req.prompt_text
        if req.prompt_token_ids is not None and self.opts.tokenizer:
            return self._decode(req.prompt_token_ids)
        return synthetic_text(num_tokens if num_tokens is not None else req.prompt_len)

    def _decode(self, ids: list[int]) -> str:
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.opts.tokenizer)
            except Exception as e:
                raise UserError(f"--tokenizer {self.opts.tokenizer}: cannot load ({e})") from None
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def _first_body(self, i: int, req: Request) -> bytes:
        p = self._payload(req)
        session = req.session_id is not None
        if self.chat:
            text = self._text(req)
            self.user_text[i] = text
            self.messages[i] = [{"role": "user", "content": text}]
            p["messages"] = self.messages[i]
        elif self.opts.prompt_format == "text" or (
            self.opts.prompt_format == "auto"
            and (session or (req.prompt_token_ids is None and req.prompt_text is not None))
        ):
            text = self._text(req)
            self.user_text[i] = self.prompts[i] = text
            p["prompt"] = text
        else:
            ids = (
                req.prompt_token_ids
                if req.prompt_token_ids is not None
                else (synthetic_token_ids(req))
            )
            self.sent_ids[i] = len(ids)
            p["prompt"] = ids
        return json.dumps(p, separators=(",", ":")).encode()

    def follow_up_body(self, i: int, parent_reply: str) -> bytes:
        """A later turn: the history (with the server's actual replies) plus this turn's text."""
        it = self.schedule.items[i]
        req = it.request
        parent = self.jobs[i].depends_on
        assert parent is not None
        prev = self.schedule.items[parent].request
        own = max(1, req.prompt_len - prev.prompt_len - prev.output_len)
        text = self._text(req, own)
        self.user_text[i] = text
        p = self._payload(req)
        if self.chat:
            msgs = [
                *self.messages.pop(parent, []),
                {"role": "assistant", "content": parent_reply},
                {"role": "user", "content": text},
            ]
            self.messages[i] = msgs
            p["messages"] = msgs
        else:
            prompt = f"{self.prompts.pop(parent, '')}{parent_reply}\n{text}"
            self.prompts[i] = prompt
            p["prompt"] = prompt
        return json.dumps(p, separators=(",", ":")).encode()


class OpenAIEngine(Engine):
    """The ``openai`` engine: an open-loop HTTP client; see the module docstring."""

    name = "openai"

    def run(
        self, schedule: Schedule, config: EngineConfig, *, progress: bool = False
    ) -> RunRecords:
        opts = parse_options(config.options)
        plan = _Plan(schedule, config, opts)
        plan.build()
        headers = {"Content-Type": "application/json"}
        if opts.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[opts.api_key_env]}"
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(schedule), desc="requests", unit="req")
        try:
            result, timeline = _run_loop(_drive(plan, headers, bar))
        finally:
            if bar is not None:
                bar.close()
        return _records(plan, result, timeline)


def _run_loop(coro: Any) -> Any:
    """Run on a fresh (uv)loop; from inside a running loop (a notebook) use a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        with asyncio.Runner(loop_factory=loadgen.new_event_loop) as runner:
            return runner.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro)).result()


async def _drive(
    plan: _Plan, headers: dict[str, str], bar: Any
) -> tuple[loadgen.LoadResult, Timeline]:
    opts = plan.opts
    url, chat = plan.url, plan.chat
    timeline = Timeline(kv_blocks_total=float(plan.config.kv_blocks or math.nan))
    session = loadgen.make_session(opts.max_concurrency, opts.request_timeout)
    outcomes: dict[int, loadgen.Outcome] = {}
    start: list[float] = []

    async def send(i: int, out: loadgen.Outcome) -> None:
        body = plan.bodies[i]
        if body is None:
            parent = plan.jobs[i].depends_on
            assert parent is not None
            body = plan.follow_up_body(i, outcomes[parent].text)
        plan.bodies[i] = None  # free memory as we go
        await loadgen.stream_request(session, url, body, out, chat=chat, headers=headers)

    def on_done(i: int, out: loadgen.Outcome) -> None:
        outcomes[i] = out
        if bar is not None:
            bar.update(1)

    stop = asyncio.Event()
    sampler = None
    if opts.metrics:
        murl = opts.metrics_url or api_root(opts.base_url) + "/metrics"
        sampler = asyncio.create_task(_sample(murl, opts.metrics_interval, start, timeline, stop))
    try:
        result = await loadgen.run_open_loop(
            plan.jobs,
            send,
            max_concurrency=opts.max_concurrency,
            on_done=on_done,
            on_start=start.append,
        )
    finally:
        stop.set()
        if sampler is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(sampler, timeout=5)
        await session.close()
    return result, timeline


async def _sample(
    url: str, interval: float, start: list[float], timeline: Timeline, stop: asyncio.Event
) -> None:
    """Scrape until stopped, then once more; an unreachable server only leaves gaps."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s:
        while True:
            last = stop.is_set()
            try:
                async with s.get(url) as resp:
                    if resp.status == 200:
                        raw = await resp.read()
                        t = time.perf_counter()
                        if start:
                            timeline.add(t - start[0], parse_metrics(raw))
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            if last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q)) if len(x) else math.nan


def _loadgen_summary(
    plan: _Plan, res: loadgen.LoadResult, timeline: Timeline, mismatches: dict[str, int]
) -> dict[str, Any]:
    """Was the schedule kept? Dispatch lag, achieved vs target send rate, and the verdict."""
    sched = np.asarray(res.scheduled, dtype=float)
    sends = np.array(
        [o.send_time - res.t0 if o is not None else math.nan for o in res.outcomes], dtype=float
    )
    sent = ~np.isnan(sends)
    lag = sends[sent] - sched[sent]
    roots = np.array([j.depends_on is None for j in plan.jobs], dtype=bool)
    target = achieved = math.nan
    rs = np.sort(sched[roots])
    if len(rs) > 1 and rs[-1] - rs[0] > 0:
        target = float((len(rs) - 1) / (rs[-1] - rs[0]))
        ss = np.sort(sends[roots & sent])
        if len(ss) > 1 and ss[-1] > ss[0]:
            achieved = float((len(ss) - 1) / (ss[-1] - ss[0]))
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
    return {
        "client": "workload_eval.loadgen (aiohttp)",
        "endpoint": plan.opts.endpoint,
        "base_url": redact(plan.opts.base_url),
        "max_concurrency": plan.opts.max_concurrency,
        "requests": len(res.outcomes),
        "sent": int(sent.sum()),
        "ok": n_ok,
        "not_sent": int((~sent).sum()),
        "dispatch_lag_p50": _pct(lag, 50),
        "dispatch_lag_p99": p99,
        "dispatch_lag_max": float(lag.max()) if len(lag) else math.nan,
        "target_rate": target,
        "achieved_rate": achieved,
        "valid": not reasons,
        "invalid_reason": "; ".join(reasons),
        "interrupted": res.interrupted,
        "wall_s": res.wall_s,
        "client_cpu_s": res.cpu_s,
        "metrics_samples": len(timeline.rows),
        "server_preemptions": timeline.preemptions,
        **mismatches,
    }


def _records(plan: _Plan, res: loadgen.LoadResult, timeline: Timeline) -> RunRecords:
    rows = []
    out_mismatch = prompt_mismatch = 0
    t0 = res.t0
    for i, it in enumerate(plan.schedule.items):
        req, o = it.request, res.outcomes[i]
        if o is None:
            o = loadgen.Outcome(status="failed", error="not sent (run interrupted)")
        ok = o.status == "ok"
        generated = o.completion_tokens if o.completion_tokens is not None else len(o.token_times)
        prompt_tokens = o.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = plan.sent_ids[i] if plan.sent_ids[i] is not None else req.prompt_len
        if ok and generated != req.output_len * plan.config.n:
            out_mismatch += 1
        if ok and plan.sent_ids[i] is not None and prompt_tokens != plan.sent_ids[i]:
            prompt_mismatch += 1
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
                "error": "" if ok else (o.error or "failed"),
                "token_times": [t - t0 for t in o.token_times],
            }
        )
    requests = pd.DataFrame(rows, columns=list(REQUEST_COLUMNS))
    requests["session_id"] = requests["session_id"].astype("Int64")
    steps = pd.DataFrame(timeline.rows, columns=list(STEP_COLUMNS))
    mismatches = {
        "output_token_mismatches": out_mismatch,
        "prompt_token_mismatches": prompt_mismatch,
    }
    summary = _loadgen_summary(plan, res, timeline, mismatches)
    cfg = plan.config.model_dump()
    cfg["options"] = {**cfg["options"], "base_url": redact(plan.opts.base_url)}
    config = {
        "engine": "openai",
        "engine_config": cfg,
        "schedule": plan.schedule.kind,
        "interrupted": res.interrupted,
        "schedule_params": dict(plan.schedule.params),
        "loadgen": summary,
    }
    return RunRecords(requests=requests, steps=steps, config=config)
