"""The request plan: everything decided before the clock starts (URL, request bodies).

Bodies are serialized up front so sending costs no JSON work. Token-id prompts come from the
one prompt synthesizer, so a server is sent exactly the ids the in-process engines use
(shared prefixes included); a session's later turn sent as text is built when its parent's
reply is known (the history carries the server's actual reply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import JsonValue

from workload_eval.contracts import Request, Schedule
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai.options import OpenAIOptions, api_root, redact
from workload_eval.errors import UserError
from workload_eval.workloads.synthesizer import PromptSynthesizer, Vocab

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def synthetic_text(num_tokens: int) -> str:
    """About ``num_tokens`` tokens of text for servers that only take text."""
    return " ".join(["hi"] * max(1, num_tokens))


@dataclass
class RequestPlan:
    """The body each schedule item sends (by position), and what was decided for it."""

    schedule: Schedule
    config: EngineConfig
    opts: OpenAIOptions
    bodies: list[bytes | None] = field(default_factory=list)
    sent_ids: list[list[int] | None] = field(default_factory=list)  # token-id prompts sent
    user_text: list[str] = field(default_factory=list)  # this turn's user message (sessions)
    messages: dict[int, list[dict[str, str]]] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)  # completions history text

    @property
    def chat(self) -> bool:
        return self.opts.endpoint == "chat"

    @property
    def root(self) -> str:
        """The server's root URL (``http://h:p``), where /metrics and vLLM's admin routes are."""
        # With an API key the bearer header authenticates; credentials in the URL would clash.
        base = redact(self.opts.base_url) if self.opts.api_key_env else self.opts.base_url
        return api_root(base)

    @property
    def url(self) -> str:
        path = "/v1/chat/completions" if self.chat else "/v1/completions"
        return self.root + path

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The server's tokenizer when given (option ``tokenizer``): its vocabulary and text."""
        if not self.opts.tokenizer:
            return None
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(self.opts.tokenizer)
        except Exception as e:
            raise UserError(f"--tokenizer {self.opts.tokenizer}: cannot load ({e})") from None

    @cached_property
    def synthesizer(self) -> PromptSynthesizer:
        tok = self.tokenizer
        vocab = Vocab.of(tok, len(tok)) if tok is not None else Vocab.default()
        return PromptSynthesizer(vocab, self.config.seed)

    def build(self) -> None:
        graph = self.schedule.graph  # checks that every follow-up names a request
        for i, it in enumerate(self.schedule.items):
            self.user_text.append("")
            self.sent_ids.append(None)
            follow_up = graph.parents[i] is not None
            body = None if follow_up and self._as_text(it.request) else self._first_body(i)
            self.bodies.append(body)

    def _payload(self, req: Request) -> dict[str, JsonValue]:
        p: dict[str, JsonValue] = {
            "model": self.config.model,
            "max_tokens": req.output_len,
            "stream": self.opts.stream,
        }
        if self.opts.stream:
            usage: dict[str, JsonValue] = {"include_usage": True}
            if self.opts.continuous_usage:
                usage["continuous_usage_stats"] = True
            p["stream_options"] = usage
        if self.opts.ignore_eos:
            p["ignore_eos"] = True
        if self.opts.min_tokens:
            p["min_tokens"] = req.output_len
        if self.config.n > 1:
            p["n"] = self.config.n
        p.update(self.opts.extra_body)
        return p

    def asked_tokens(self, i: int) -> int:
        """Tokens item ``i`` asks for (max_tokens, or extra_body's, x n): the most its
        answer may carry."""
        asked = self.schedule.items[i].request.output_len
        for key in ("max_tokens", "max_completion_tokens"):
            v = self.opts.extra_body.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                asked = max(asked, v)
        return max(1, asked) * self.config.n

    def _as_text(self, req: Request) -> bool:
        """Chat always; completions when asked, or (auto) for a request that has only text,
        or for a session turn with text (its history then carries the server's replies)."""
        if self.chat or self.opts.prompt_format == "text":
            return True
        if self.opts.prompt_format == "token_ids" or req.prompt_text is None:
            return False
        return req.session_id is not None or req.prompt_token_ids is None

    def _ids(self, req: Request) -> list[int]:
        """The one synthesizer's ids; the workload's own go as they are unless the server's
        vocabulary is known (option ``tokenizer``), as there is nothing to fold them into."""
        if req.prompt_token_ids is not None and self.opts.tokenizer is None:
            return list(req.prompt_token_ids)
        return self.synthesizer.prompt_ids(req)

    def _text(self, req: Request, num_tokens: int | None = None) -> str:
        if req.prompt_text is not None:
            return req.prompt_text
        if req.prompt_token_ids is not None and self.tokenizer is not None:
            return self.tokenizer.decode(req.prompt_token_ids, skip_special_tokens=True)
        return synthetic_text(num_tokens if num_tokens is not None else req.prompt_len)

    def _first_body(self, i: int) -> bytes:
        req = self.schedule.items[i].request
        p = self._payload(req)
        if self.chat:
            text = self._text(req)
            self.user_text[i] = text
            self.messages[i] = [{"role": "user", "content": text}]
            p["messages"] = list(self.messages[i])
        elif self._as_text(req):
            text = self._text(req)
            self.user_text[i] = self.prompts[i] = text
            p["prompt"] = text
        else:
            ids = self._ids(req)
            self.sent_ids[i] = ids
            p["prompt"] = list(ids)
        return json.dumps(p, separators=(",", ":")).encode()

    def follow_up_body(self, i: int, parent_reply: str) -> bytes:
        """A later turn as text: the history (with the server's actual replies) plus its text."""
        req = self.schedule.items[i].request
        parent = self.schedule.graph.parents[i]
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
            p["messages"] = list(msgs)
        else:
            prompt = f"{self.prompts.pop(parent, '')}{parent_reply}\n{text}"
            self.prompts[i] = prompt
            p["prompt"] = prompt
        return json.dumps(p, separators=(",", ":")).encode()
