"""What the openai engine can be told (``EngineConfig.options``) and how a URL is stored."""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workload_eval.errors import UserError


class OpenAIOptions(BaseModel):
    """``EngineConfig.options`` of the openai engine (CLI: --base-url, --api-key-env, ...)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str
    api_key_env: str | None = None  # name of the env var holding the key; the key is never stored
    endpoint: Literal["completions", "chat"] = "completions"
    max_concurrency: int | None = Field(default=None, gt=0)
    request_timeout: float = Field(default=600.0, gt=0)  # s, per request
    prompt_format: Literal["auto", "token_ids", "text"] = "auto"
    stream: bool = True
    ignore_eos: bool = True  # vLLM's extension; outputs then follow the workload's lengths
    continuous_usage: bool = True  # vLLM's per-chunk usage: exact per-token times when merged
    min_tokens: bool = False  # also send min_tokens = max_tokens (servers without ignore_eos)
    tokenizer: str | None = None  # HF tokenizer to decode token ids when text is needed
    extra_body: dict[str, Any] = Field(default_factory=dict)
    metrics: bool = True
    metrics_url: str | None = None  # default: <server root>/metrics
    metrics_interval: float = Field(default=0.5, gt=0)
    max_lag_p99: float = Field(default=0.010, gt=0)  # s; above it the run is flagged invalid
    rate_tolerance: float = Field(default=0.05, gt=0, lt=1)  # |achieved/target - 1| allowed


def parse_options(options: dict[str, Any]) -> OpenAIOptions:
    """Validate the options; a mistake names the option and what was expected."""
    if "base_url" not in options:
        raise UserError("engine openai: --base-url is required (e.g. http://127.0.0.1:8000)")
    unknown = sorted(set(options) - set(OpenAIOptions.model_fields))
    if unknown:
        raise UserError(
            f"engine openai: unknown option {unknown[0]!r} (expected one of "
            f"{', '.join(OpenAIOptions.model_fields)})"
        )
    try:
        opts = OpenAIOptions.model_validate(options)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "options"
        raise UserError(f"engine openai: option {where!r}: {err['msg']}") from None
    scheme = urlsplit(opts.base_url).scheme
    if scheme not in ("http", "https"):
        raise UserError(f"--base-url {opts.base_url!r}: expected an http:// or https:// URL")
    if opts.api_key_env and opts.api_key_env not in os.environ:
        raise UserError(f"--api-key-env {opts.api_key_env}: environment variable is not set")
    return opts


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
