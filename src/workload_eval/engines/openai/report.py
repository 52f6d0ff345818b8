"""What an openai run observed: was the schedule kept (the load generator's verdict)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from workload_eval.contracts import Cell, EngineReport, MaybeFloat
from workload_eval.engines.openai.options import OpenAIOptions


class LoadgenReport(BaseModel):
    """Dispatch lag (actual - scheduled send, s), achieved vs target send rate, the verdict."""

    model_config = ConfigDict(extra="forbid")

    client: str
    workers: int = 1  # load-generator processes (or Ray actors) that shared the schedule
    requests: int
    sent: int
    ok: int
    not_sent: int
    dispatch_lag_p50: MaybeFloat
    dispatch_lag_p99: MaybeFloat
    dispatch_lag_max: MaybeFloat
    target_rate: MaybeFloat  # first-turn sends per second the schedule asked for (None in
    # a closed loop, whose sends follow the answers)
    achieved_rate: MaybeFloat
    valid: bool  # lag and rate within bounds, token counts as the workload's, something ok
    invalid_reason: str
    interrupted: bool
    wall_s: float
    client_cpu_s: float
    metrics_samples: int
    server_preemptions: MaybeFloat  # counted by the server during the run
    output_token_mismatches: int  # completed with another token count than the workload's
    prompt_token_mismatches: int  # the server counted or saw another prompt than was sent
    usage_mismatches: int = 0  # the server's usage disagreed with the tokens it streamed
    stale_connection_retries: int = 0  # sent again on a fresh connection (stale keep-alive)
    failed_client_side: int = 0  # never reached the server (no connection, interrupted, ...)
    failed_server_side: int = 0  # HTTP errors, malformed or cut answers, timeouts


class OpenAIReport(EngineReport):
    """``config.resolved`` of an openai run; ``options.base_url`` has no credentials."""

    engine: Literal["openai"] = "openai"
    options: OpenAIOptions
    loadgen: LoadgenReport

    def invalid_reasons(self) -> list[str]:
        own = [r for r in self.loadgen.invalid_reason.split("; ") if r]
        return [*own, *(r for r in super().invalid_reasons() if r not in own)]

    def columns(self) -> dict[str, Cell]:
        lg = self.loadgen
        return {
            "loadgen.valid": lg.valid,
            "loadgen.workers": lg.workers,
            "loadgen.dispatch_lag_p99": lg.dispatch_lag_p99,
            "loadgen.target_rate": lg.target_rate,
            "loadgen.achieved_rate": lg.achieved_rate,
        }
