"""What one command may make the tool allocate: the bounds on hostile or mistaken inputs.

Every input that sizes an allocation (a request count, a rate times a duration, a data
file, a spec) is checked against a limit here before anything is built, so a typo such
as ``--num-requests 1000000000`` is a one-line error rather than a 7 GiB allocation.
The limits are about this machine's memory, not the experiment: they are never stored
with a result and never change one. Each can be raised for those who mean it, by an
environment variable (inherited by sweep worker processes) or ``--max-requests``.

Integer ranges every boundary (CLI, spec, data file) shares are here too, so a value
that passed validation always fits where it is written (int64 Parquet columns, numpy's
seed range).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from workload_eval.errors import UserError

# --------------------------------------------------------------------------- integer ranges

# Largest count, token length or block number accepted anywhere: fits int32 (vLLM's and
# numpy's default index types), so nothing that passed validation overflows when stored.
MAX_INT = 2**31 - 1
# Largest id (Mooncake hash_ids, session ids): fits the int64 Parquet columns they go to.
MAX_ID = 2**63 - 1
# numpy's legacy RandomState (the seed paper's Poisson process) takes seeds in [0, 2**32).
MAX_SEED = 2**32 - 1
# KV block size in tokens: the simulator keeps one counter per block phase (a list of this
# length); vLLM's largest supported block size is 256, so 4096 leaves room to explore.
MAX_BLOCK_SIZE = 4096
# Parallel samples per request (vLLM SamplingParams.n); each sample is a sequence.
MAX_SAMPLES = 4096

Count = Annotated[int, Field(ge=1, le=MAX_INT)]
NonNegativeCount = Annotated[int, Field(ge=0, le=MAX_INT)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


# A model's shape (a config.json, models/hf_config.py). Each bound is about 10x the largest
# published model, so every real config passes while a typo (a million layers) is refused
# before it sizes a simulation and yields nonsense. Largest published: Llama 3.1 405B has
# 126 layers, hidden 16,384, 128 heads, FFN 53,248; Gemma 3's vocabulary is 262,144;
# Kimi K2 has 384 experts; Llama 4 Scout 10M positions; Kimi K2 ~1T parameters.
MAX_MODEL_LAYERS = 1_024
MAX_HIDDEN_SIZE = 131_072
MAX_ATTENTION_HEADS = 2_048
MAX_HEAD_DIM = 8_192
MAX_FFN_SIZE = 1 << 20
MAX_VOCAB_SIZE = 1 << 23
MAX_EXPERTS = 4_096
MAX_POSITIONS = 1 << 27
MAX_MODEL_PARAMS = 20 * 10**12

# --------------------------------------------------------------------------- allocation limits


@dataclass(frozen=True)
class Limit:
    """One bound: its default, the variable that overrides it, and why the default."""

    name: str
    env: str
    default: int
    unit: str
    why: str

    def value(self) -> int:
        """The bound in force: the environment's override, else the default."""
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            v = float(raw)
        except ValueError:
            v = math.nan
        if not 1 <= v < 2**63:  # also refuses NaN and infinity
            raise UserError(f"${self.env}={raw!r}: expected a positive whole number of {self.unit}")
        return int(v)


MAX_REQUESTS = Limit(
    "requests per run",
    "WORKLOAD_EVAL_MAX_REQUESTS",
    1_000_000,
    "requests",
    "measured: 1,000,000 simulated alpaca requests peak at 1.5 GB RSS and take 36 s; "
    "requests with token ids take about 10x the memory",
)
MAX_DURATION_S = Limit(
    "seconds of arrivals",
    "WORKLOAD_EVAL_MAX_DURATION_S",
    30 * 24 * 3600,
    "seconds",
    "the seed's Poisson process draws one count per 10 ms: 30 days are 2.6e8 draws (~3 s)",
)
MAX_DATA_BYTES = Limit(
    "bytes of one data file (after decompression)",
    "WORKLOAD_EVAL_MAX_DATA_BYTES",
    1 << 30,
    "bytes",
    "parsed JSON takes 2.5x its text (ShareGPT, measured); the full ShareGPT V3 is 0.67 GB",
)
MAX_SPEC_BYTES = Limit(
    "bytes of a spec, profile or model config file",
    "WORKLOAD_EVAL_MAX_SPEC_BYTES",
    16 << 20,
    "bytes",
    "hand-written and measured files are kilobytes; 16 MiB parse in well under a second",
)
MAX_POINTS = Limit(
    "runs of one study",
    "WORKLOAD_EVAL_MAX_POINTS",
    100_000,
    "runs",
    "a spec's axes multiply: 100,000 runs take days even on the simulator, and building "
    "their specs alone takes seconds and hundreds of MB",
)
# A gzip data file that inflates more than this (past the first few MiB) is a
# decompression bomb: real JSON/CSV text compresses 4-10x (ShareGPT: 4.5x).
MAX_INFLATE_RATIO = 100
INFLATE_RATIO_AFTER_BYTES = 16 << 20
# A YAML spec after expanding its aliases (a few hundred nodes in practice), and how
# deeply any spec, profile or data record may nest (Python's parsers recurse per level).
MAX_YAML_NODES = 100_000
MAX_NESTING = 64

# Local worker processes (`--jobs`): each holds the whole stack (~300 MB); more than this
# is a typo that would fork the machine to death.
MAX_JOBS = 256

# Seconds any time option may be (a per-request timeout, a sampling interval, a lag bound):
# longer than the longest run the tool accepts is a typo (and near-infinite timers overflow).
MAX_DURATION = 30 * 24 * 3600
# /metrics is scraped at most 100 times a second: one scrape of vLLM's costs ~1-5 ms of the
# client's CPU and more of the server's, so faster sampling would become the load itself.
MIN_METRICS_INTERVAL_S = 0.01
# Load workers: more than this is a typo, not a cluster (each keeps ~2,000 req/s).
MAX_LOAD_WORKERS = 1024

ALL_LIMITS = (MAX_REQUESTS, MAX_DURATION_S, MAX_DATA_BYTES, MAX_SPEC_BYTES, MAX_POINTS)


def max_requests() -> int:
    return MAX_REQUESTS.value()


def max_duration_s() -> float:
    return float(MAX_DURATION_S.value())


def set_max_requests(n: int | None) -> None:
    """``--max-requests N``: raise (or lower) the bound for this process and its workers."""
    if n is None:
        return
    if not 1 <= n <= MAX_ID:
        raise UserError(f"--max-requests {n}: expected a positive number of requests")
    os.environ[MAX_REQUESTS.env] = str(n)


def check_request_count(n: float, *, what: str) -> None:
    """``what`` would make ``n`` requests (or arrivals): refuse beyond the limit."""
    limit = max_requests()
    if not n <= limit:  # also refuses NaN
        shown = f"{n:,.0f}" if n == n and n != float("inf") else str(n)
        raise UserError(
            f"{what} makes {shown} requests, more than the {limit:,} a run may have "
            f"(raise the limit with --max-requests N, or ${MAX_REQUESTS.env})"
        )


def check_duration(seconds: float, *, what: str) -> None:
    """Seconds of arrivals beyond the limit (the seed's process draws per 10 ms quantum)."""
    limit = max_duration_s()
    if not seconds <= limit:
        raise UserError(
            f"{what} spans {seconds:g} s of arrivals, more than the {limit:g} s a run may "
            f"have (raise the limit with ${MAX_DURATION_S.env})"
        )


# --------------------------------------------------------------------------- server answers
# A server's answer is untrusted input (engines/openai/answers.py): what one request's answer
# may make the client hold, so a hostile or broken server costs a failed record, not memory.

# One server-sent event (a chunk: a few tokens of text, vLLM's per-chunk usage, and with
# return_token_ids the prompt's ids, ~7 bytes each: 4 MiB hold a 500k-token prompt).
MAX_EVENT_BYTES = 4 << 20
# A whole answer: a fixed allowance plus this much per token asked for (a vLLM chunk with
# per-chunk usage is ~300 bytes per token; 4 KiB leaves 10x for verbose servers).
ANSWER_BASE_BYTES = 4 << 20
ANSWER_BYTES_PER_TOKEN = 4096
# An answer's status line and headers (aiohttp allows 8 KiB per line; a server sends ~10 lines).
MAX_RESPONSE_HEAD_BYTES = 64 << 10
# What is read of an error answer (HTTP 4xx/5xx) and kept of any error message.
MAX_ERROR_BODY_BYTES = 64 << 10
ERROR_CHARS = 300
# A prompt's token count may exceed the bytes sent by the chat template's own tokens (role
# markers, a default system prompt): at most this many (Llama 3's default adds ~30).
MAX_TEMPLATE_TOKENS = 8192


def answer_budget(expected_tokens: int) -> int:
    """Bytes one request's answer may have, for ``expected_tokens`` tokens asked for."""
    return ANSWER_BASE_BYTES + ANSWER_BYTES_PER_TOKEN * max(expected_tokens, 1)
