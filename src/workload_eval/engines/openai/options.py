"""What the openai engine can be told beyond the shared knobs, and how a URL is stored."""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, JsonValue, ValidationInfo, field_validator

from workload_eval.engines.base import EngineOptions
from workload_eval.errors import UserError
from workload_eval.limits import MAX_DURATION, MAX_INT, MAX_LOAD_WORKERS, MIN_METRICS_INTERVAL_S
from workload_eval.redaction import register, scrub_text, url_password


class OpenAIOptions(EngineOptions):
    """The openai engine's options (CLI: --base-url, --api-key-env, --endpoint, ...)."""

    base_url: str
    api_key_env: str | None = None  # name of the env var holding the key; the key is never stored
    endpoint: Literal["completions", "chat"] = "completions"
    max_concurrency: int | None = Field(default=None, gt=0, le=MAX_INT)
    request_timeout: float = Field(default=600.0, gt=0, le=MAX_DURATION)  # s, per request
    prompt_format: Literal["auto", "token_ids", "text"] = "auto"
    stream: bool = True
    ignore_eos: bool = True  # vLLM's extension; outputs then follow the workload's lengths
    continuous_usage: bool = True  # vLLM's per-chunk usage: exact per-token times when merged
    min_tokens: bool = False  # also send min_tokens = max_tokens (servers without ignore_eos)
    tokenizer: str | None = None  # HF tokenizer to decode token ids when text is needed
    extra_body: dict[str, JsonValue] = Field(default_factory=dict)
    metrics: bool = True
    metrics_url: str | None = None  # default: <server root>/metrics
    metrics_interval: float = Field(default=0.5, ge=MIN_METRICS_INTERVAL_S, le=MAX_DURATION)
    # POST /reset_prefix_cache before the run (vLLM with VLLM_SERVER_DEV_MODE=1), so a rerun
    # is not faster for what an earlier run cached; the run record says when it could not
    reset_prefix_cache: bool = True
    # load workers splitting an open loop (workers.py): processes on this machine, or Ray
    # actors (ray_address: a cluster; None: RAY_ADDRESS or a local Ray)
    workers: int = Field(default=1, ge=1, le=MAX_LOAD_WORKERS)
    worker_backend: Literal["processes", "ray"] = "processes"
    ray_address: str | None = None
    max_lag_p99: float = Field(default=0.010, gt=0, le=MAX_DURATION)  # s; above: run invalid
    rate_tolerance: float = Field(default=0.05, gt=0, lt=1)  # |achieved/target - 1| allowed

    @field_validator("base_url", "metrics_url")
    @classmethod
    def _http(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        flag = "--base-url" if info.field_name == "base_url" else "metrics_url"
        register(url_password(v))  # never written anywhere (redaction)
        try:
            parts = urlsplit(v)
            port = parts.port  # parses it: a bad port fails here, not mid-run
        except ValueError as e:
            raise ValueError(f"not a URL ({scrub_text(str(e))}) ({flag})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            where = f" (port {port})" if port else ""
            raise ValueError(f"expected an http:// or https:// URL with a host{where} ({flag})")
        return v

    def api_key(self) -> str | None:
        """The key, read from the environment at run time (never stored); unset is an error."""
        if not self.api_key_env:
            return None
        if self.api_key_env not in os.environ:
            raise UserError(f"--api-key-env {self.api_key_env}: environment variable is not set")
        key = os.environ[self.api_key_env]
        register(key)  # a server that echoes it back must not get it into the results
        return key


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
