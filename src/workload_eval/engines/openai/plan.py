"""The request plan: everything decided before the clock starts (jobs, URL, request bodies).

Bodies are serialized up front so sending costs no JSON work; a follow-up turn of a session
is built when its parent's reply is known (the history carries the server's actual reply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workload_eval.contracts import Request, Schedule
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import loadgen
from workload_eval.engines.openai.options import OpenAIOptions, api_root, redact
from workload_eval.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SYNTH_TOKEN_BASE = 1000  # synthesized prompts avoid the special and byte tokens of small vocabs
SYNTH_TOKEN_SPAN = 20000


def synthetic_token_ids(req: Request) -> list[int]:
    """Deterministic prompt ids of the request's length (lengths-only workloads, as the seed)."""
    base = req.request_id * 7919
    return [SYNTH_TOKEN_BASE + (base + 31 * k) % SYNTH_TOKEN_SPAN for k in range(req.prompt_len)]


def synthetic_text(num_tokens: int) -> str:
    """About ``num_tokens`` tokens of text for servers that only take text."""
    return " ".join(["hi"] * max(1, num_tokens))


@dataclass
class RequestPlan:
    """Jobs for the load generator and the body each one sends."""

    schedule: Schedule
    config: EngineConfig
    opts: OpenAIOptions
    jobs: list[loadgen.Job] = field(default_factory=list)
    bodies: list[bytes | None] = field(default_factory=list)
    sent_ids: list[int | None] = field(default_factory=list)  # prompt length when ids were sent
    user_text: list[str] = field(default_factory=list)  # this turn's user message (sessions)
    messages: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)  # completions history text
    _tokenizer: PreTrainedTokenizerBase | None = None

    @property
    def chat(self) -> bool:
        return self.opts.endpoint == "chat"

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        # With an API key the bearer header authenticates; credentials in the URL would clash.
        base = redact(self.opts.base_url) if self.opts.api_key_env else self.opts.base_url
        return api_root(base) + path

    def build(self) -> None:
        index = {it.request.request_id: i for i, it in enumerate(self.schedule.items)}
        for i, it in enumerate(self.schedule.items):
            req = it.request
            parent = None
            if it.depends_on is not None:
                parent = index.get(it.depends_on)
                if parent is None:
                    raise UserError(
                        f"schedule item {i}: depends_on={it.depends_on} names no "
                        "request of the schedule"
                    )
            self.jobs.append(
                loadgen.Job(None if parent is not None else it.arrival_time, parent, it.think_time)
            )
            self.user_text.append("")
            self.sent_ids.append(None)
            self.bodies.append(None if parent is not None else self._first_body(i, req))

    def _payload(self, req: Request) -> dict[str, Any]:
        p: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": req.output_len,
            "stream": self.opts.stream,
        }
        if self.opts.stream:
            p["stream_options"] = {"include_usage": True}
            if self.opts.continuous_usage:
                p["stream_options"]["continuous_usage_stats"] = True
        if self.opts.ignore_eos:
            p["ignore_eos"] = True
        if self.opts.min_tokens:
            p["min_tokens"] = req.output_len
        if self.config.n > 1:
            p["n"] = self.config.n
        p.update(self.opts.extra_body)
        return p

    def _text(self, req: Request, num_tokens: int | None = None) -> str:
        if req.prompt_text is not None:
            return req.prompt_text
        if req.prompt_token_ids is not None and self.opts.tokenizer:
            return self._decode(req.prompt_token_ids)
        return synthetic_text(num_tokens if num_tokens is not None else req.prompt_len)

    def _decode(self, ids: list[int]) -> str:
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(self.opts.tokenizer)
            except Exception as e:
                raise UserError(f"--tokenizer {self.opts.tokenizer}: cannot load ({e})") from None
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    def _first_body(self, i: int, req: Request) -> bytes:
        p = self._payload(req)
        session = req.session_id is not None
        if self.chat:
            text = self._text(req)
            self.user_text[i] = text
            self.messages[i] = [{"role": "user", "content": text}]
            p["messages"] = self.messages[i]
        elif self.opts.prompt_format == "text" or (
            self.opts.prompt_format == "auto"
            and (session or (req.prompt_token_ids is None and req.prompt_text is not None))
        ):
            text = self._text(req)
            self.user_text[i] = self.prompts[i] = text
            p["prompt"] = text
        else:
            ids = (
                req.prompt_token_ids
                if req.prompt_token_ids is not None
                else (synthetic_token_ids(req))
            )
            self.sent_ids[i] = len(ids)
            p["prompt"] = ids
        return json.dumps(p, separators=(",", ":")).encode()

    def follow_up_body(self, i: int, parent_reply: str) -> bytes:
        """A later turn: the history (with the server's actual replies) plus this turn's text."""
        it = self.schedule.items[i]
        req = it.request
        parent = self.jobs[i].depends_on
        assert parent is not None
        prev = self.schedule.items[parent].request
        own = max(1, req.prompt_len - prev.prompt_len - prev.output_len)
        text = self._text(req, own)
        self.user_text[i] = text
        p = self._payload(req)
        if self.chat:
            msgs = [
                *self.messages.pop(parent, []),
                {"role": "assistant", "content": parent_reply},
                {"role": "user", "content": text},
            ]
            self.messages[i] = msgs
            p["messages"] = msgs
        else:
            prompt = f"{self.prompts.pop(parent, '')}{parent_reply}\n{text}"
            self.prompts[i] = prompt
            p["prompt"] = prompt
        return json.dumps(p, separators=(",", ":")).encode()
