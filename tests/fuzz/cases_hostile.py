"""What the client must make of each hostile server mode (``testing/hostile_server.py``).

Every mode runs the real ``run --engine openai`` against a real server on 127.0.0.1 that
breaks the protocol one way; whatever it does, every request is recorded with a status,
the run is written, memory stays bounded and nothing hangs (see test_fuzz_servers.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    name: str
    status: str  # "ok" | "failed": what every request must end as
    error: str | None = None  # in every failed request's error (case-insensitive)
    reason: str | None = None  # in the run's invalid_reason (the verdict)


MODES: tuple[Mode, ...] = (
    Mode("honest", "ok"),
    # malformed usage: typed and bounded, per request
    Mode("usage-string", "failed", "usage.prompt_tokens is a string"),
    Mode("usage-list", "failed", "usage is a list"),
    Mode("usage-negative", "failed", "expected 0 to"),
    Mode("usage-huge", "failed", "usage.completion_tokens"),
    Mode("usage-float", "failed", "whole number"),
    Mode("usage-bool", "failed", "a boolean"),
    Mode("prompt-usage-huge", "failed", "usage.prompt_tokens"),
    Mode("token-claim-huge", "failed", "more than the"),
    Mode("token-claim-decreasing", "failed", "went down"),
    # a usage that is a number but wrong: believed nowhere, the run says so
    Mode("usage-disagrees", "ok", reason="usage disagreed"),
    Mode("more-tokens", "failed", "more than the"),
    # not streamed although asked: parsed with the same checks
    Mode("non-stream", "ok"),
    Mode("non-stream-bad-usage", "failed", "usage is a string"),
    Mode("non-stream-huge-usage", "failed", "usage.completion_tokens"),
    # sizes and time: bounded
    Mode("giant-chunk", "failed", "bytes"),
    Mode("giant-event", "failed", "bytes"),
    Mode("endless-tokens", "failed", "more than the"),
    Mode("endless-pings", "failed"),
    Mode("slowloris", "failed", "timeout"),
    Mode("no-answer", "failed", "timeout"),
    # not the protocol at all
    Mode("wrong-content-type", "failed", "content type"),
    Mode("invalid-json", "failed", "not valid JSON"),
    Mode("deep-json", "failed", "nested too deeply"),
    Mode("huge-number", "failed", "not valid JSON"),
    Mode("not-an-object", "failed", "expected a JSON object"),
    Mode("choices-not-list", "failed", "choices is a string"),
    Mode("text-not-string", "failed", "expected text"),
    Mode("error-in-stream", "failed", "boom"),
    Mode("binary-garbage", "failed"),
    Mode("lone-surrogate", "ok"),
    # connections cut
    Mode("early-close", "failed"),
    Mode("close-before-headers", "failed"),
    Mode("no-done", "failed", "stream ended before"),
    Mode("truncated-chunked", "failed"),
    # errors with bodies, and servers that echo what they were sent
    Mode("http-500-huge", "failed", "HTTP 500"),
    Mode("http-404-model", "failed", "does not exist"),
    Mode("http-429", "failed", "HTTP 429"),
    Mode("echo-headers", "failed", "HTTP 401"),
    Mode("echo-in-stream", "failed", "server error in stream"),
    Mode("redirect", "failed", "HTTP 307"),
    # not HTTP as the client knows it
    Mode("huge-header", "failed"),
    Mode("garbage-status", "failed"),
    # /metrics lies or floods: the timeline has gaps, the run goes on
    Mode("metrics-garbage", "ok"),
    Mode("metrics-huge", "ok"),
)
