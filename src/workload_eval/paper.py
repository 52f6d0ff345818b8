"""The seed paper's settings and its capacity rule: the one copy every module imports.

Source: Papaioannou & Doudali, "The Importance of Workload Choice in Evaluating LLM
Inference Systems", EuroMLSys '24 (doi 10.1145/3642970.3655823), and its artifact
(github.com/muse-research-lab/llm-inference-workload-eval: README, experiments/*.sh,
analysis.ipynb), as summarized in ``../shared/calibration/README.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The SLO: p95 of the per-request normalized latency, (finish - arrival) / generated tokens,
# at most 0.1875 s/token (a 4 words/s reading speed at 0.75 words per token).
SLO_METRIC = "normalized_latency_p95"
SLO_S_PER_TOKEN = 0.1875
SLO_TEXT = f"{SLO_METRIC}<={SLO_S_PER_TOKEN}"  # the `--slo` / spec form

# The four use cases, in the paper's order: text generation, summarization, question
# answering, conversation.
WORKLOADS: tuple[str, ...] = ("alpaca", "cnn_dailymail", "dolly", "sharegpt")
MODELS_13B: tuple[str, ...] = ("opt-13b", "llama-2-13b")
MODELS_7B: tuple[str, ...] = ("opt-6.7b", "llama-2-7b")
MODELS: tuple[str, ...] = MODELS_13B + MODELS_7B
# KV-cache sizes in blocks: 643 is the most that fit OPT-13B on an A100-40GB (Figure 2);
# Figure 3 sweeps every model over 150..600.
KV_BLOCKS_MAX = 643
KV_BLOCKS_13B: tuple[int, ...] = (150, 300, 450, 600, KV_BLOCKS_MAX)
KV_BLOCKS_7B: tuple[int, ...] = (150, 300, 450, 600)
NUM_REQUESTS: tuple[int, ...] = (100, 500, 1000)  # offline N: the first N requests at t = 0
ONLINE_DURATION_S = 600.0  # seconds of Poisson arrivals per rate

# The engine the paper measured: a vLLM 0.2.1 fork on one A100 40GB, swap space 0.
GPU = "a100-40gb"
POLICY = "vllm-0.2"
BLOCK_SIZE = 16
MAX_NUM_BATCHED_TOKENS = 2560
MAX_NUM_SEQS = 2048
MAX_MODEL_LEN = 2048
SEED = 0

CAPACITY_RULE = "the rate just below the first two consecutive grid rates that both violate the SLO"


@dataclass(frozen=True)
class RuleAnswer:
    """What the paper's capacity rule says about one grid of probed rates."""

    rate: float | None  # max rate under the SLO; None: the two lowest rates both violate
    decided: bool  # two consecutive violations were found: rates above cannot change it
    upper: float | None  # the lowest violating rate above ``rate`` (None: none probed)

    @property
    def censored(self) -> bool:
        """The answer is a bound, not a value: below the grid, or the grid ended undecided."""
        return self.rate is None or not self.decided


def max_rate_under_slo(rates: Sequence[float], passed: Sequence[bool]) -> RuleAnswer:
    """The paper's "max request rate under SLO" on a grid of rates.

    The paper states it as "the highest rate r such that the next two higher rates both
    exceed the SLO". Read literally on a monotone curve every rate two steps below the
    top of the grid would qualify, so it is a scan: walk the grid upward; a single
    violation followed by a pass is noise and the walk goes on; at the first two
    *consecutive* violating rates r[i], r[i+1] the answer is r[i-1] (which passed, or
    the pair would have come earlier), whatever lies above. On the paper's measured
    OPT-13B grids at 643 blocks this gives alpaca 30.0 and cnn_dailymail 0.5 (its p95
    wavers around the SLO: the passes at 0.8, 1.0 and 1.1 req/s come after the pair).

    At the ends of the grid:
    - the two lowest rates both violate: ``rate`` is None (the capacity is below the
      grid), decided;
    - the grid ends before two consecutive violations (everything passes, or only the
      top rate violates, e.g. pass/pass/fail at 1, 2, 3): ``rate`` is the highest rate
      that passed (2.0 there; None when none did) and the answer is not decided, since
      the rate above the grid could pass and make the top violation noise.

    ``passed`` holds one verdict per rate (a missing or NaN metric is a violation);
    rates need not be sorted but must be distinct.
    """
    if len(rates) != len(passed):
        raise ValueError(f"{len(rates)} rates but {len(passed)} verdicts")
    values = [float(r) for r in rates]
    if any(math.isnan(r) for r in values) or len(set(values)) != len(values):
        raise ValueError(f"rates must be distinct numbers, got {values}")
    grid = sorted(zip(values, (bool(p) for p in passed), strict=True))
    pair = next((i for i in range(len(grid) - 1) if not (grid[i][1] or grid[i + 1][1])), None)
    if pair is not None:
        rate = grid[pair - 1][0] if pair > 0 else None
    else:
        rate = max((r for r, ok in grid if ok), default=None)
    upper = min((r for r, ok in grid if not ok and (rate is None or r > rate)), default=None)
    return RuleAnswer(rate, pair is not None, upper)
