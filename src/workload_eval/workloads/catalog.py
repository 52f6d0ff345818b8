"""The named workloads: use case, where the data comes from, how requests are built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from workload_eval.errors import UserError

Builder = Literal["instruction", "prompt_output", "first_two", "first_turn", "chat", "lengths"]


class HubSource(BaseModel):
    """A Hugging Face hub dataset split (the seed's dataset ids)."""

    model_config = ConfigDict(frozen=True)
    id: str
    config: str | None = None
    split: str = "train"


class WorkloadSpec(BaseModel):
    """One catalog entry. ``fields`` maps each role to the column names accepted for it."""

    model_config = ConfigDict(frozen=True)
    name: str
    use_case: str
    builds: str  # how a request is built, in words (shown by `workloads list`)
    builder: Builder
    fields: dict[str, tuple[str, ...]]
    local: tuple[str, ...]  # glob patterns under the data dir, first match wins
    hub: HubSource | None = None
    category_contains: str | None = None  # keep rows whose category contains this
    # The source dataset's record count per kept category, where a local copy may hold them in
    # other proportions: selection draws categories in these proportions (selection.py).
    category_mix: tuple[tuple[str, int], ...] | None = None
    arrival_unit_s: float | None = None  # seconds per unit of the arrival column; None: datetime
    lengths_tokenizer: str | None = None  # for lengths-only data: whose tokenizer counted them
    color: str | None = None  # the seed's Figure 1 colour
    profiled: bool = False  # a shipped length profile exists

    @property
    def source(self) -> str:
        folder = self.local[0].split("/")[0]
        return f"hub {self.hub.id}, local {folder}/" if self.hub else f"local {folder}/"

    @property
    def tokenized(self) -> bool:
        return self.builder != "lengths"

    @property
    def has_arrivals(self) -> bool:
        return "arrival" in self.fields


# databricks-dolly-15k (15,011 records) as published on its dataset card: the QA categories
# the seed kept ("qa" in category). Our ../shared copy is a quality-filtered 3k subset whose
# QA part holds them as 943 / 483 / 146: closed_qa, the one that carries a context passage
# (long prompts, short answers), is 2.5x rarer there than in the data the seed ran.
DOLLY_QA_COUNTS: tuple[tuple[str, int], ...] = (
    ("open_qa", 3742),
    ("general_qa", 2191),
    ("closed_qa", 1773),
)

_INSTR = {
    "instruction": ("instruction",),
    "input": ("input", "context"),
    "output": ("output", "response"),
}


def _azure(name: str, use_case: str, kind: str) -> WorkloadSpec:
    """The two Azure 2023 traces share one schema (TIMESTAMP, ContextTokens, GeneratedTokens)."""
    return WorkloadSpec(
        name=name,
        use_case=use_case,
        builder="lengths",
        builds="Azure 2023 trace: arrival times, context and generated token counts",
        fields={
            "arrival": ("TIMESTAMP",),
            "prompt_len": ("ContextTokens",),
            "output_len": ("GeneratedTokens",),
        },
        local=(f"traces/AzureLLMInferenceTrace_{kind}*",),
        lengths_tokenizer="trace",
    )


WORKLOADS: dict[str, WorkloadSpec] = {
    w.name: w
    for w in [
        WorkloadSpec(
            name="alpaca",
            use_case="text generation",
            builder="instruction",
            builds="instruction + input -> output",
            fields=_INSTR,
            hub=HubSource(id="tatsu-lab/alpaca"),
            local=("alpaca/alpaca_data.json", "alpaca/*.json*", "alpaca/*"),
            color="#F8DE4B",
            profiled=True,
        ),
        WorkloadSpec(
            name="dolly",
            use_case="question answering",
            builder="instruction",
            builds=(
                "categories containing 'qa', in dolly-15k's proportions: "
                "instruction + context -> response"
            ),
            fields={**_INSTR, "category": ("category",)},
            category_contains="qa",
            category_mix=DOLLY_QA_COUNTS,
            hub=HubSource(id="databricks/databricks-dolly-15k"),
            local=("dolly/dolly_data.json", "dolly/*.json*", "dolly/*"),
            color="#57B593",
            profiled=True,
        ),
        WorkloadSpec(
            name="cnn_dailymail",
            use_case="summarization",
            builder="prompt_output",
            builds="article -> highlights",
            fields={"prompt": ("article",), "output": ("highlights",)},
            hub=HubSource(id="ccdv/cnn_dailymail", config="3.0.0"),
            local=("cnn_dailymail/train*", "cnn_dailymail/test*", "cnn_dailymail/*"),
            color="#E16F65",
            profiled=True,
        ),
        WorkloadSpec(
            name="sharegpt",
            use_case="conversation",
            builder="first_two",
            builds="first message -> second message (the seed's rule)",
            fields={"conversations": ("conversations", "conversation", "messages")},
            hub=HubSource(id="Aeala/ShareGPT_Vicuna_unfiltered"),
            local=("sharegpt/*.json*", "sharegpt/*"),
            color="#577FBC",
            profiled=True,
        ),
        WorkloadSpec(
            name="sharegpt_chat",
            use_case="multi-turn chat (session replay)",
            builder="chat",
            builds="every human turn -> its reply; prompt = whole history + the turn",
            fields={"conversations": ("conversations", "conversation", "messages")},
            hub=HubSource(id="Aeala/ShareGPT_Vicuna_unfiltered"),
            local=("sharegpt/*.json*", "sharegpt/*"),
            color="#8E6BB8",
            profiled=True,
        ),
        _azure("azure_conv", "conversation (production trace)", "conv"),
        _azure("azure_code", "code completion (production trace)", "code"),
        WorkloadSpec(
            name="mooncake",
            use_case="conversation with shared prefixes (trace)",
            builder="lengths",
            builds="Mooncake trace: arrival (ms), lengths, prefix block hash ids",
            fields={
                "arrival": ("timestamp",),
                "prompt_len": ("input_length",),
                "output_len": ("output_length",),
                "hash_ids": ("hash_ids",),
            },
            arrival_unit_s=1e-3,
            local=("traces/mooncake_conversation_trace.jsonl*", "traces/mooncake*"),
            lengths_tokenizer="trace",
        ),
        WorkloadSpec(
            name="humaneval",
            use_case="code completion",
            builder="prompt_output",
            builds="prompt -> canonical_solution",
            fields={"prompt": ("prompt",), "output": ("canonical_solution",)},
            hub=HubSource(id="openai/openai_humaneval", split="test"),
            local=("extra/HumanEval.jsonl*", "humaneval/*"),
        ),
        WorkloadSpec(
            name="lmsys_chat",
            use_case="conversation",
            builder="first_turn",
            builds="first user turn -> the reply that follows it",
            fields={"conversations": ("conversation", "conversations", "messages")},
            local=("extra/lmsys_chat*", "lmsys_chat/*"),
        ),
        WorkloadSpec(
            name="long_document",
            use_case="long-context document summarization",
            builder="prompt_output",
            builds="arXiv article -> abstract (offline: arXiv summarization lengths, Llama-2)",
            fields={"prompt": ("article",), "output": ("abstract",)},
            hub=HubSource(id="ccdv/arxiv-summarization", config="document", split="test"),
            local=("arxiv/*.json*", "arxiv/*.parquet", "arxiv_summarization/*.json*"),
            profiled=True,
        ),
        WorkloadSpec(
            name="long_reasoning",
            use_case="long-output reasoning",
            builder="first_turn",
            builds="problem -> DeepSeek-R1 reasoning trace and answer (OpenThoughts-114k)",
            fields={"conversations": ("conversations", "conversation", "messages")},
            hub=HubSource(id="open-thoughts/OpenThoughts-114k"),
            local=("reasoning/*.json*", "reasoning/*.parquet", "extra/openthoughts*"),
        ),
        WorkloadSpec(
            name="arxiv_summarization",
            use_case="long-document summarization",
            builder="lengths",
            builds="token lengths only (Llama-2 tokenizer): prefill -> decode tokens",
            fields={"prompt_len": ("num_prefill_tokens",), "output_len": ("num_decode_tokens",)},
            local=("extra/arxiv_summarization_lengths*", "arxiv_summarization/*"),
            lengths_tokenizer="llama-2",
        ),
    ]
}

# Column names tried for a user's own file when no workload and no mapping is given.
CUSTOM_FIELDS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "input", "instruction", "question", "text", "article"),
    "output": ("output", "completion", "response", "answer", "highlights"),
}


def known_workloads() -> list[str]:
    return list(WORKLOADS)


def get_workload(name: str) -> WorkloadSpec:
    """A catalog entry by name (case-insensitive, '-' same as '_')."""
    spec = WORKLOADS.get(name.strip().lower().replace("-", "_"))
    if spec is None:
        raise UserError(
            f"unknown workload {name!r}: expected one of {', '.join(WORKLOADS)} "
            "or a dataset file (JSON, JSONL, CSV, Parquet, gzip) given with --data-file"
        )
    return spec
