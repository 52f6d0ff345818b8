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
absorbs the HTTP path (and a corpus measured in-process is not charged for it).
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


# Measured by scripts/measure_frontend_costs.py on this project's 2-core machine (CPU time,
# Hugging Face Llama-2 tokenizer, aiohttp on loopback); see SOURCES.
TOKENIZE_S_PER_TOKEN = 1.7e-6
HTTP_LOOPBACK_S = 0.17e-3

FRONTEND = {
    "client_http": PathCosts(
        request_fixed_s=HTTP_LOOPBACK_S + 0.8e-3,
        tokenize_s_per_token=TOKENIZE_S_PER_TOKEN,
        token_delivery_s=0.5e-3,
        client_retokenize_s_per_token=TOKENIZE_S_PER_TOKEN,
    ),
    "server_prometheus": PathCosts(
        request_fixed_s=0.3e-3,
        tokenize_s_per_token=0.0,
        token_delivery_s=0.3e-3,
        client_retokenize_s_per_token=0.0,
    ),
    "engine_in_process": PathCosts(0.0, 0.0, 0.0, 0.0),
}

SOURCES = {
    "tokenize_s_per_token": (
        "scripts/measure_frontend_costs.py: Llama-2 HF tokenizer encoding inference-perf's "
        "random-id prompts (591.5 tokens for 100 + 466, as the corpus measured): 1.73 us per "
        "token of CPU time; re-encoding prompt + output 1.66 us per token"
    ),
    "client_http.request_fixed_s": (
        "aiohttp POST -> first SSE line on loopback measured 0.17 ms (same script), plus vLLM's "
        "request handling (OpenAI request model, engine-core hand-over over ZMQ): 0.8 ms, an "
        "estimate, not measured; network hops between client and server are not modelled"
    ),
    "client_http.token_delivery_s": (
        "estimate: output processor, incremental detokenisation and one SSE event (0.5 ms)"
    ),
    "client_http.client_retokenize_s_per_token": (
        "inference-perf E0 re-tokenises prompt and output text before end_time "
        "(INFERENCE_PERF_SHARED_PREFIX.md section 5): the tokenizer cost above"
    ),
    "server_prometheus": "estimate: ZMQ hand-over API server <-> engine core, 0.3 ms each way",
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
