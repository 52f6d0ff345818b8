"""Where a latency was taken vs where the simulator measures it (the engine's scheduler).

The simulator's TTFT and e2e run from a request's arrival at the engine to the step that
produced its first / last token. A measurement taken elsewhere adds the path in between:

- ``client_http`` (inference-perf): the client's POST, the API server's HTTP handling and prompt
  tokenisation, the hand-over to the engine; after the token, detokenisation and the SSE line
  back to the client. inference-perf E0 builds also re-tokenise prompt and output after the
  stream ended, before taking ``end_time`` (e2e only).
- ``server_prometheus``: vLLM's histograms start when the API server created the request
  (after tokenisation) and stop when the output processor saw the token: the engine hand-over
  both ways.
- ``engine_in_process``: scheduler timestamps; nothing to add.

The constants are kept here, apart from the engine's, so that fitting the engine never
absorbs the HTTP path (and a corpus measured in-process is not charged for it). What happens
inside the engine before the first token (waiting for the step in flight, asynchronous
scheduling's one-step lag, the prefill chunk, a prefix-cache hit leaving ~1 token to compute)
is the simulator's: its TTFT runs from the scheduler's arrival to the end of the step that
sampled the first token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PathCosts:
    """Seconds added before the engine sees a request and after it produced a token."""

    request_fixed_s: float  # client send -> engine arrival, excluding tokenisation
    tokenize_s_per_token: float  # server-side prompt tokenisation
    token_delivery_s: float  # engine token -> client (or metrics) observes it
    client_retokenize_s_per_token: float  # e2e only: client re-tokenises prompt + output


# The pieces of vLLM's request path outside the engine core's scheduler (read from vLLM's
# source: entrypoints/openai completion serving, v1/engine async_llm + input_processor +
# output_processor + core_client, v1/engine/core busy loop), each a CPU cost of the API server
# or the engine core's I/O threads. Sources in SOURCES; scripts/measure_frontend_costs.py and
# scripts/measure_vllm_request_path.py measure them.
TOKENIZE_S_PER_TOKEN = 1.7e-6  # prompt text -> token ids (HF tokenizer), per prompt token
NEW_CONNECTION_S = 0.2e-3  # TCP handshake: inference-perf < 0.3 opens a connection per request
HTTP_REQUEST_S = 1.7e-3  # uvicorn parse, OpenAI request model, completion preprocessing
ENGINE_HANDOVER_IN_S = 0.8e-3  # input processor, msgspec + ZMQ to the engine core, scheduler add
ENGINE_HANDOVER_OUT_S = 0.7e-3  # engine core output -> ZMQ -> output processor, detokenisation
SSE_EVENT_S = 0.8e-3  # completion chunk JSON, SSE write, the client reads the line

FRONTEND = {
    "client_http": PathCosts(
        request_fixed_s=NEW_CONNECTION_S + HTTP_REQUEST_S + ENGINE_HANDOVER_IN_S,
        tokenize_s_per_token=TOKENIZE_S_PER_TOKEN,
        token_delivery_s=ENGINE_HANDOVER_OUT_S + SSE_EVENT_S,
        client_retokenize_s_per_token=TOKENIZE_S_PER_TOKEN,
    ),
    # vLLM's histograms: arrival stamped by the input processor (after HTTP and tokenisation),
    # first token when the output processor handles it (IterationStats in v1/metrics/stats.py)
    "server_prometheus": PathCosts(
        request_fixed_s=ENGINE_HANDOVER_IN_S,
        tokenize_s_per_token=0.0,
        token_delivery_s=ENGINE_HANDOVER_OUT_S,
        client_retokenize_s_per_token=0.0,
    ),
    "engine_in_process": PathCosts(0.0, 0.0, 0.0, 0.0),
}

_API_SERVER_CPU = (
    "scripts/measure_vllm_request_path.py on a real vLLM (0.32, CPU build, tiny Llama) OpenAI "
    "server, idle, 575-token inference-perf-like prompts, 2 tokens: the API server process "
    "spends 6.8-7.5 ms of CPU per request on this project's shared 2-core VM (1.0 ms of it "
    "tokenisation; about 1.5 ms the second token, [DONE] and teardown, off the TTFT path), "
    "and the wall-clock splits are client - prometheus 4.4-6.1 ms, prometheus - engine "
    "4.1-8.0 ms (contended); the critical ~4 ms (1.0 ms of it the first token's way back) "
    "is split between the pieces as the source assigns the work"
)
SOURCES = {
    "tokenize_s_per_token": (
        "scripts/measure_frontend_costs.py: Llama-2 HF tokenizer encoding inference-perf's "
        "random-id prompts (591.5 tokens for 100 + 466, as the corpus measured): 1.73 us per "
        "token of CPU time; re-encoding prompt + output 1.66 us per token"
    ),
    "new_connection_s": (
        "inference-perf before v0.3.0 (a85b31b, 2025-11-26; the calib's E0 builds) creates an "
        "aiohttp ClientSession + TCPConnector per request and takes start_time before "
        "session.post (client/modelserver/openai_client.py @b81afa4), so each TTFT includes a "
        "TCP handshake (one in-cluster round trip, ~0.2 ms) and a DNS lookup of the server "
        "name; the lookup depends on the cluster's resolver and the URL (not in a scenario): "
        "not modelled"
    ),
    "http_request_s": _API_SERVER_CPU,
    "engine_handover_in_s": _API_SERVER_CPU,
    "engine_handover_out_s": _API_SERVER_CPU,
    "sse_event_s": _API_SERVER_CPU,
    "client_http.client_retokenize_s_per_token": (
        "inference-perf E0 re-tokenises prompt and output text before end_time "
        "(INFERENCE_PERF_SHARED_PREFIX.md section 5): the tokenizer cost above"
    ),
    "server_prometheus": (
        "vLLM V1 stamps arrival in the input processor and the first token in the output "
        "processor: the hand-over both ways"
    ),
    "engine_in_process": "scheduler timestamps: the simulator's own clock",
}


def known_point(point: str) -> bool:
    return point in FRONTEND


def add_path(
    point: str,
    ttft: np.ndarray,
    e2e: np.ndarray,
    prompt_len: np.ndarray,
    output_len: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Engine-side TTFT and e2e (s) as seen at ``point``; an unknown point adds nothing."""
    costs = FRONTEND.get(point)
    if costs is None:
        return ttft, e2e
    before = costs.request_fixed_s + costs.tokenize_s_per_token * prompt_len
    after = costs.token_delivery_s
    retok = costs.client_retokenize_s_per_token * (prompt_len + output_len)
    return ttft + before + after, e2e + before + after + retok
