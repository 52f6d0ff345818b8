"""The stream chunk fast path (answers.plain_token) reads every chunk as parse_object does.

A chunk it takes must give the same token text and finish flag as the full parse, with no
usage, prompt ids or error that the full parse would have acted on; a chunk the full parse
refuses must not be taken. Checked on the usual vLLM/OpenAI chunks and on a deterministic
corpus of malformed ones (each field swapped for values of every JSON kind).
"""

from __future__ import annotations

import copy
import itertools

import pytest

from workload_eval.engines.openai.answers import BadAnswer, parse_object, plain_token

ODD_VALUES = [None, True, 0, 1.5, -3, "", " tok", [], [1, 2], {}, {"content": "x"}]

BASES = {
    False: [
        {"id": "c", "choices": [{"index": 0, "text": " tok", "finish_reason": None}]},
        {"choices": [{"text": "", "finish_reason": None, "logprobs": None}]},
        {"choices": [{"text": " end", "finish_reason": "length"}]},
        {"choices": [{"text": None, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
        {"choices": [{"text": " t", "finish_reason": None}], "usage": {"completion_tokens": 2}},
        {"choices": [{"text": " t", "finish_reason": None, "prompt_token_ids": [1, 2]}]},
        {"error": {"message": "overloaded"}},
    ],
    True: [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"delta": {"content": " tok"}, "finish_reason": None}]},
        {"choices": [{"delta": {"reasoning_content": " think"}, "finish_reason": None}]},
        {"choices": [{"delta": {"content": None, "reasoning_content": None}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
        {"choices": [{"finish_reason": "length"}]},
        {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}},
    ],
}


def _mutants(base: dict) -> list[object]:
    """``base`` with each field (top level, first choice, its delta) set to every odd value."""
    out: list[object] = [base]
    paths = [("choices",), ("usage",), ("error",)]
    choices = base.get("choices")
    if isinstance(choices, list) and choices:
        paths += [("choices", 0, k) for k in ("text", "finish_reason", "delta", "prompt_token_ids")]
        if isinstance(choices[0].get("delta"), dict):
            paths += [("choices", 0, "delta", k) for k in ("content", "reasoning_content")]
    for path, value in itertools.product(paths, ODD_VALUES):
        obj = copy.deepcopy(base)
        target = obj
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        out.append(obj)
    return [*out, None, [], "data", 3]


def _cases() -> list[tuple[bool, object]]:
    return [(chat, obj) for chat, bases in BASES.items() for b in bases for obj in _mutants(b)]


@pytest.mark.parametrize("chat", [False, True])
def test_usual_chunks_take_the_fast_path(chat: bool) -> None:
    usual = BASES[chat][1] if chat else BASES[chat][0]
    assert plain_token(usual, chat=chat) == (" tok", False)


def test_fast_path_agrees_with_the_full_parse() -> None:
    taken = refused = 0
    for chat, obj in _cases():
        fast = plain_token(obj, chat=chat)
        try:
            ev = parse_object(obj, chat=chat, streamed=True, max_prompt_ids=100)
        except BadAnswer:
            assert fast is None, (chat, obj)  # never takes what the full parse refuses
            refused += 1
            continue
        if fast is None:
            continue
        taken += 1
        assert (ev.text, ev.finished) == fast, (chat, obj)
        assert ev.usage is None and ev.prompt_ids is None and ev.error is None, (chat, obj)
    assert taken > 20 and refused > 20  # the corpus exercises both sides
