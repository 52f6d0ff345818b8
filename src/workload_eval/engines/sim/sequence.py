"""State of the simulated requests and the per-step log, as flat lists (the hot loop's data).

A request is a *sequence group* (vLLM's name): ``n`` parallel samples that share one prompt.
Everything is indexed by the request's position in the schedule (its ``gid``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PENDING, OK, IGNORED, FAILED = "pending", "ok", "ignored", "failed"


@dataclass(slots=True)
class RequestTable:
    """Per-request inputs and outcomes; plain lists so the loop indexes them cheaply."""

    prompt_len: list[int]
    target: list[int]  # tokens to generate (the workload's output length, capped as vLLM caps)
    n: list[int]
    arrival: list[float]
    expected: list[int]  # the workload's output length
    first_token: list[float] = field(default_factory=list)
    finish: list[float] = field(default_factory=list)
    generated: list[int] = field(default_factory=list)
    preemptions: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    token_times: list[list[float]] | None = None

    @classmethod
    def build(
        cls,
        prompt_len: list[int],
        output_len: list[int],
        n: list[int],
        *,
        max_model_len: int,
        record_token_times: bool = False,
    ) -> RequestTable:
        """Targets follow vLLM's length cap: a sequence stops once it exceeds max_model_len."""
        size = len(prompt_len)
        if len(output_len) != size:
            raise ValueError("prompt_len and output_len differ in length")
        p = np.asarray(prompt_len, dtype=np.int64)
        o = np.asarray(output_len, dtype=np.int64)
        target = np.maximum(1, np.minimum(o, max_model_len + 1 - p)).tolist()
        nan = float("nan")
        return cls(
            prompt_len=list(prompt_len),
            target=target,
            n=list(n),
            arrival=[nan] * size,
            expected=list(output_len),
            first_token=[nan] * size,
            finish=[nan] * size,
            generated=[0] * size,
            preemptions=[0] * size,
            status=[PENDING] * size,
            error=[""] * size,
            token_times=[[] for _ in range(size)] if record_token_times else None,
        )

    def __len__(self) -> int:
        return len(self.prompt_len)


STEP_FIELDS = (
    "time",
    "duration",
    "kind",
    "batched_tokens",
    "num_running",
    "num_waiting",
    "num_preempted",
    "kv_blocks_used",
    "logical_tokens",
    "physical_tokens",
    "num_steps",
)


@dataclass(slots=True)
class StepLog:
    """One row per engine step, or per run of identical decode steps (``num_steps`` > 1).

    Rows are tuples in ``STEP_FIELDS`` order: one append per step is all the hot loop pays.
    """

    kv_blocks_total: int = 0
    rows: list[tuple] = field(default_factory=list)

    def add(
        self,
        time: float,
        duration: float,
        kind: str,
        batched_tokens: int,
        num_running: int,
        num_waiting: int,
        num_preempted: int,
        kv_blocks_used: int,
        logical_tokens: int,
        physical_tokens: int,
        num_steps: int = 1,
    ) -> None:
        self.rows.append(
            (
                time,
                duration,
                kind,
                batched_tokens,
                num_running,
                num_waiting,
                num_preempted,
                kv_blocks_used,
                logical_tokens,
                physical_tokens,
                num_steps,
            )
        )

    def columns(self) -> dict[str, list]:
        """Column name -> values (empty lists when no step ran)."""
        if not self.rows:
            return {name: [] for name in STEP_FIELDS}
        cols = zip(*self.rows, strict=True)
        return {name: list(col) for name, col in zip(STEP_FIELDS, cols, strict=True)}

    def __len__(self) -> int:
        return len(self.rows)
