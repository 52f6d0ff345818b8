"""Generated hostile files: experiment specs, data files, traces, perf profiles and model
configs. Each generator mutates a valid file one field (or one byte pattern) at a time."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator

from harness import Case

OUT = "{tmp}/out"


def _j(obj: object) -> bytes:
    return json.dumps(obj).encode()


# ----------------------------------------------------------------------------- specs

SPEC_BASE = "workloads: [alpaca]\nkv_blocks: [643]\nschedules: [{kind: offline, num_requests: 5}]\n"

BOMB = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "name: *i\n"
)

SPECS: list[tuple[str, bytes, str]] = [
    ("alias-bomb-in-name", BOMB.encode(), "alias"),
    ("recursive-alias", b"workloads: &w [alpaca, *w]\n", "alias"),
    ("undefined-alias", b"workloads: *nope\n", "nope"),
    ("duplicate-key", (SPEC_BASE + "kv_blocks: [300]\n").encode(), "duplicate"),
    ("int-key", (SPEC_BASE + "1: x\n").encode(), "key 1"),
    ("bool-key", (SPEC_BASE + "true: x\n").encode(), "key true"),
    ("null-key", (SPEC_BASE + "~: x\n").encode(), "key"),
    ("list-key", (SPEC_BASE + "? [a, b]\n: 1\n").encode(), "key"),
    ("not-utf8", b"name: caf\xe9\n" + SPEC_BASE.encode(), "UTF-8"),
    ("deep-nesting", b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nest"),
    ("deep-flow-mapping", b"name: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n", "nest"),
    ("deep-block-nesting", "".join("  " * i + f"k{i}:\n" for i in range(200)).encode(), "nest"),
    ("control-characters", b"name: a\x00b\n", "YAML"),
    ("nul-escape-in-data-dir", (SPEC_BASE + 'data_dir: "/tmp/a\\0b"\n').encode(), "NUL"),
    ("surrogate-escape-in-name", (SPEC_BASE + 'name: "x\\ud800"\n').encode(), "YAML"),
    ("workload-path-missing", b"workloads: [data/mine.json]\nschedules: [{kind: offline, num_requests: 5}]\n", "mine.json"),
    ("multiple-documents", (SPEC_BASE + "---\nname: x\n").encode(), "document"),
    ("python-tag", b"name: !!python/object/apply:os.system [ls]\n", "YAML"),
    ("top-level-list", b"- a\n- b\n", "mapping"),
    ("top-level-scalar", b"hello\n", "mapping"),
    ("name-is-a-list", b"name: [1, 2]\n" + SPEC_BASE.encode(), "name"),
    ("description-is-a-map", b"description: {a: 1}\n" + SPEC_BASE.encode(), "description"),
    ("empty-kv-blocks", b"workloads: [alpaca]\nkv_blocks: []\n", "kv_blocks"),
    ("empty-utilizations", b"workloads: [alpaca]\ngpu_memory_utilization: []\n", "gpu_memory_utilization"),
    ("empty-workloads", b"workloads: []\n", "workloads"),
    ("empty-models", b"models: []\nworkloads: [alpaca]\n", "models"),
    ("empty-seeds", (SPEC_BASE + "seeds: []\n").encode(), "seeds"),
    ("empty-schedules", b"workloads: [alpaca]\nschedules: []\n", "schedules"),
    ("empty-engines", (SPEC_BASE + "engines: []\n").encode(), "engines"),
    ("empty-rate-list", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: []}]\n", "rate"),
    ("empty-num-requests", b"workloads: [alpaca]\nschedules: [{kind: offline, num_requests: []}]\n", "num_requests"),
    ("empty-groups", b"groups: []\n", "groups"),
    ("empty-slos-with-capacity", b"workloads: [alpaca]\nslos: []\nschedules: [{kind: poisson, duration: 5, rate: capacity}]\n", "slo"),
    ("seed-2**64", (SPEC_BASE + f"seeds: [{2**64}]\n").encode(), "seeds"),
    ("seed-negative", (SPEC_BASE + "seeds: [-1]\n").encode(), "seeds"),
    ("kv-blocks-1e20", f"workloads: [alpaca]\nkv_blocks: [{10**20}]\n".encode(), "kv_blocks"),
    ("kv-blocks-5000-digits", ("workloads: [alpaca]\nkv_blocks: [" + "9" * 5000 + "]\n").encode(), "digits"),
    ("rate-1e12", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 600, rate: 1.0e12}]\n", "requests"),
    ("duration-1e12", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 1.0e12, rate: 1}]\n", "duration"),
    ("num-requests-1e9", b"workloads: [alpaca]\nschedules: [{kind: offline, num_requests: 1000000000}]\n", "requests"),
    ("rate-nan", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: .nan}]\n", "finite"),
    ("rate-inf", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: .inf}]\n", "finite"),
    ("rate-string-inf", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: '1.0e400'}]\n", "rate"),
    ("rate-range-nan", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: {start: 1, stop: .nan, step: 1}}]\n", "finite"),
    ("rate-range-too-many", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: {start: 1, stop: 1000, step: 0.0001}}]\n", "rates"),
    ("capacity-max-rate-inf", b"workloads: [alpaca]\ncapacity: {max_rate: .inf}\n", "finite"),
    ("capacity-tolerance-nan", b"workloads: [alpaca]\ncapacity: {tolerance: .nan}\n", "finite"),
    ("slo-negative", (SPEC_BASE + "slos: ['ttft_p99<=-1']\n").encode(), "never"),
    ("slo-mapping-nan", (SPEC_BASE + "slos: {ttft_p99: .nan}\n").encode(), "finite"),
    ("slo-unparseable", (SPEC_BASE + "slos: ['ttft_p99 is small']\n").encode(), "slo"),
    ("unknown-top-key", (SPEC_BASE + "kv_block: [3]\n").encode(), "kv_block"),
    ("unknown-schedule-kind", b"workloads: [alpaca]\nschedules: [{kind: bursty}]\n", "bursty"),
    ("unknown-engine-setting", (SPEC_BASE + "engines: [{engine: sim, turbo: true}]\n").encode(), "turbo"),
    ("engine-block-size-huge", (SPEC_BASE + "engines: [{engine: sim, block_size: 100000000}]\n").encode(), "block_size"),
    ("openai-without-base-url", (SPEC_BASE + "engines: [openai]\n").encode(), "base-url"),
    ("openai-bad-url", (SPEC_BASE + "engines: [{engine: openai, options: {base_url: 'http://[::1'}}]\n").encode(), "base-url"),
    ("vllm-0.2-with-chunked-prefill", (SPEC_BASE + "engines: [{engine: sim, policy: vllm-0.2, enable_chunked_prefill: true}]\n").encode(), "vllm-v1"),
    ("sim-max-paddings-negative", (SPEC_BASE + "engines: [{engine: sim, options: {max_paddings: -100}}]\n").encode(), "max_paddings"),
    ("sim-unknown-option", (SPEC_BASE + "engines: [{engine: sim, options: {bogus: 1}}]\n").encode(), "bogus"),
    ("missing-data-dir", (SPEC_BASE + "data_dir: /nonexistent/data\n").encode(), "/nonexistent/data"),
    ("local-without-files", (SPEC_BASE + "source: local\ndata_dir: {tmp}\n").encode(), "local"),
    ("trace-on-alpaca", b"workloads: [alpaca]\nschedules: [{kind: trace}]\n", "arrival"),
    ("too-few-kv-blocks-in-a-group", b"workloads: [alpaca]\nschedules: [{kind: offline, num_requests: 5}]\ngroups: [{name: ok}, {name: small, kv_blocks: [3]}]\n", "small"),
    ("duplicate-group-names", (SPEC_BASE + "groups: [{name: a}, {name: a}]\n").encode(), "unique"),
    ("too-many-runs", ("workloads: [alpaca]\nkv_blocks: [" + ",".join(map(str, range(100, 1100))) + "]\nseeds: [" + ",".join(map(str, range(200))) + "]\n").encode(), "601,000 runs"),
    # booleans are not numbers (a seed of `true` ran seed 1)
    ("seed-true", (SPEC_BASE + "seeds: [true]\n").encode(), "seeds"),
    ("seed-scalar-false", (SPEC_BASE + "seeds: false\n").encode(), "seeds"),
    ("kv-blocks-true", b"workloads: [alpaca]\nkv_blocks: true\n", "kv_blocks"),
    ("num-requests-true", b"workloads: [alpaca]\nschedules: [{kind: offline, num_requests: true}]\n", "num_requests"),
    ("rate-list-of-false", b"workloads: [alpaca]\nschedules: [{kind: poisson, duration: 5, rate: [false]}]\n", "rate"),
    ("engine-option-true-for-a-number", (SPEC_BASE + "engines: [{engine: sim, max_paddings: true}]\n").encode(), "max_paddings"),
    ("block-size-true", (SPEC_BASE + "engines: [{engine: sim, block_size: true}]\n").encode(), "block_size"),
]  # fmt: skip


def spec_cases() -> Iterator[Case]:
    for name, text, expect in SPECS:
        yield Case(
            f"spec:{name}",
            ("sweep", "{tmp}/spec.yaml", "--out", OUT, "--no-progress"),
            files={"spec.yaml": text},
            expect=expect,
        )
    yield Case(
        "spec:too-big",
        ("sweep", "{tmp}/spec.yaml", "--out", OUT),
        files={"spec.yaml": b"# " + b"x" * (17 << 20) + b"\n"},
        expect="bytes",
    )
    yield Case("spec:missing", ("sweep", "{tmp}/none.yaml", "--out", OUT), expect="none.yaml")
    yield Case(
        "spec:bad-data-found-when-the-point-runs",
        ("sweep", "{tmp}/spec.yaml", "--out", OUT, "--no-progress"),
        files={
            "spec.yaml": (SPEC_BASE + "data_dir: {tmp}/d\n").encode(),
            "d/alpaca/alpaca_data.json": b'[{"instruction": NaN, "output": "x"}]',
        },
        expect="failed on their input",
    )
    yield Case(
        "spec:a-folder",
        ("sweep", "{tmp}/adir", "--out", OUT),
        files={"adir/x": b""},
        expect="adir",
    )


# ----------------------------------------------------------------------------- data files

# A sim run of a user's file (tokenized: the test sets $WORKLOAD_EVAL_TOKENIZER_DIR).
RUN_FILE = (
    *("run", "--model", "opt-13b", "--kv-blocks", "643", "--num-requests", "5"),
    *("--no-progress", "--out", OUT, "--workload"),
)
# A trace replay of DATA_DIR/traces/ (lengths only: no tokenizer).
RUN_TRACE = (
    *("run", "--model", "opt-13b", "--kv-blocks", "643", "--no-progress", "--out", OUT),
    *("--data-dir", "{tmp}/data", "--schedule", "trace", "--workload"),
)
GOOD_ROWS = [{"prompt": f"say {i}", "output": f"ok {i}"} for i in range(4)]

DATA: list[tuple[str, str, bytes, str]] = [
    ("json-nan", "mine.json", b'[{"prompt": NaN, "output": "x"}]', "NaN"),
    ("json-infinity", "mine.json", b'[{"prompt": "a", "output": "b", "n": -Infinity}]', "Infinity"),
    ("json-duplicate-key", "mine.json", b'[{"prompt": "a", "prompt": "b", "output": "c"}]', "duplicate"),
    ("json-lone-surrogate", "mine.json", b'[{"prompt": "a\\ud800", "output": "b"}]', "surrogate"),
    ("json-deep", "mine.json", b"[" * 100_000 + b"]" * 100_000, "nested"),
    ("json-5000-digit-int", "mine.json", b"[{\"prompt\": \"a\", \"output\": \"b\", \"x\": " + b"7" * 5000 + b"}]", "digits"),
    ("json-not-utf8", "mine.json", b'[{"prompt": "caf\xe9", "output": "b"}]', "UTF-8"),
    ("json-unequal-columns", "mine.json", _j({"prompt": ["a", "b", "c"], "output": ["x"]}), "unequal"),
    ("json-scalar", "mine.json", b"42", "list"),
    ("json-items-not-objects", "mine.json", b"[1, 2]", "object"),
    ("json-prompt-is-object", "mine.json", _j([{"prompt": {"a": 1}, "output": "x"}]), "text"),
    ("json-truncated", "mine.json", b'[{"prompt": "a", "output": "b"}, {"prom', "invalid JSON"),
    ("json-missing-fields", "mine.json", _j([{"question": "a"}]), "field"),
    ("json-empty", "mine.json", b"", "invalid JSON"),
    ("jsonl-bad-line", "mine.jsonl", b'{"prompt": "a", "output": "b"}\n{"prompt": \n', "line 2"),
    ("jsonl-nan-line", "mine.jsonl", b'{"prompt": "a", "output": "b"}\n{"prompt": "c", "output": NaN}\n', "line 2"),
    ("gz-not-gzip", "mine.json.gz", b"this is not gzip", "mine.json.gz"),
    ("gz-truncated", "mine.json.gz", gzip.compress(_j(GOOD_ROWS))[:-12], "mine.json.gz"),
    ("csv-short-row", "mine.csv", b"prompt,output\na,b\nc\n", "fields"),
    ("csv-long-row", "mine.csv", b"prompt,output\na,b\nc,d,e\n", "fields"),
    ("csv-not-utf8", "mine.csv", b"prompt,output\ncaf\xe9,b\n", "UTF-8"),
    ("csv-unclosed-quote", "mine.csv", b'prompt,output\n"a,b\n', "CSV"),
    ("csv-empty", "mine.csv", b"", "empty"),
    ("parquet-garbage", "mine.parquet", b"PAR1 this is not parquet PAR1", "Parquet"),
    ("unknown-suffix", "mine.xlsx", b"PK", "unsupported"),
]  # fmt: skip

# ShareGPT-shaped records under DATA_DIR/sharegpt/ (the catalog's conversations builder).
SHAREGPT: list[tuple[str, object, str]] = [
    ("conversations-int", [{"conversations": 5}], "conversation"),
    ("conversations-string", [{"conversations": "hi"}], "conversation"),
    ("conversations-object", [{"conversations": {"from": "human"}}], "message"),
    ("message-not-object", [{"conversations": [1, 2]}], "message"),
    ("message-value-list", [{"conversations": [{"from": "human", "value": ["a"]}, {"from": "gpt", "value": "b"}]}], "text"),
    ("message-without-value", [{"conversations": [{"from": "human"}, {"from": "gpt", "value": "b"}]}], "value"),
]  # fmt: skip

MOONCAKE_ROW = {"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [0]}
MOONCAKE: list[tuple[str, str, str]] = [
    ("timestamp-minus-infinity", '{"timestamp": -Infinity, "input_length": 100, "output_length": 10, "hash_ids": [1]}', "Infinity"),
    ("timestamp-plus-infinity", '{"timestamp": Infinity, "input_length": 100, "output_length": 10, "hash_ids": [1]}', "Infinity"),
    ("timestamp-nan", '{"timestamp": NaN, "input_length": 100, "output_length": 10, "hash_ids": [1]}', "NaN"),
    ("timestamp-1e308", '{"timestamp": 1e308, "input_length": 100, "output_length": 10, "hash_ids": [1]}', "arrivals"),
    ("timestamp-text", '{"timestamp": "soon", "input_length": 100, "output_length": 10, "hash_ids": [1]}', "timestamp"),
    ("timestamp-bool", '{"timestamp": true, "input_length": 100, "output_length": 10, "hash_ids": [1]}', "timestamp"),
    ("hash-id-2**70", f'{{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": [{2**70}]}}', "hash_ids"),
    ("hash-id-negative", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": [-1]}', "hash_ids"),
    ("hash-ids-string", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": "abc"}', "hash_ids"),
    ("hash-ids-int", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": 5}', "hash_ids"),
    ("hash-ids-float", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": [1.5]}', "hash_ids"),
    ("hash-ids-bool", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": [true]}', "hash_ids"),
    ("hash-ids-nested", '{"timestamp": 5, "input_length": 100, "output_length": 10, "hash_ids": [[1]]}', "hash_ids"),
    ("input-length-negative", '{"timestamp": 5, "input_length": -5, "output_length": 10, "hash_ids": [1]}', "input_length"),
    ("input-length-1e20", '{"timestamp": 5, "input_length": 1e20, "output_length": 10, "hash_ids": [1]}', "input_length"),
    ("input-length-2**70", f'{{"timestamp": 5, "input_length": {2**70}, "output_length": 10, "hash_ids": [1]}}', "input_length"),
    ("output-length-text", '{"timestamp": 5, "input_length": 100, "output_length": "ten", "hash_ids": [1]}', "output_length"),
]  # fmt: skip

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE: list[tuple[str, str, str]] = [
    ("mixed-time-zones", "2023-11-16 18:15:47+01:00,100,10\n2023-11-16 18:15:48,100,10\n", "time zone"),
    ("not-a-date", "2023-11-16 18:15:47,100,10\nyesterday,100,10\n", "date-time"),
    ("nan-tokens", "2023-11-16 18:15:47,NaN,10\n2023-11-16 18:15:48,100,10\n", "ContextTokens"),
    ("inf-tokens", "2023-11-16 18:15:47,inf,10\n2023-11-16 18:15:48,100,10\n", "ContextTokens"),
    ("ragged", "2023-11-16 18:15:47,100\n2023-11-16 18:15:48,100,10\n", "fields"),
    ("span-of-centuries", "1023-11-16 18:15:47,100,10\n2023-11-16 18:15:48,100,10\n", "arrivals"),
]  # fmt: skip


def _mooncake(line: str) -> bytes:
    return (json.dumps(MOONCAKE_ROW) + "\n" + line + "\n").encode()


def data_cases() -> Iterator[Case]:
    for name, fname, data, expect in DATA:
        yield Case(
            f"data:{name}", (*RUN_FILE, "{tmp}/" + fname), files={fname: data}, expect=expect
        )
    for name, records, expect in SHAREGPT:
        yield Case(
            f"data:sharegpt-{name}",
            (*RUN_FILE, "sharegpt", "--data-dir", "{tmp}/data"),
            files={"data/sharegpt/sg.json": _j(records)},
            expect=expect,
        )
    for name, line, expect in MOONCAKE:
        yield Case(
            f"trace:mooncake-{name}",
            (*RUN_TRACE, "mooncake"),
            files={"data/traces/mooncake_x.jsonl": _mooncake(line)},
            expect=expect,
        )
    for name, rows, expect in AZURE:
        yield Case(
            f"trace:azure-{name}",
            (*RUN_TRACE, "azure_conv"),
            files={"data/traces/AzureLLMInferenceTrace_conv_x.csv": (AZURE_HEADER + rows).encode()},
            expect=expect,
        )
    yield Case(
        "trace:time-scale-underflow",
        (*RUN_TRACE, "mooncake", "--time-scale", "1e-300"),
        files={"data/traces/mooncake_x.jsonl": _mooncake(json.dumps({**MOONCAKE_ROW, "timestamp": 9}))},
        expect="arrivals",
    )  # fmt: skip


def gzip_bomb(mib: int = 1024) -> bytes:
    """About 1 MB of gzip that inflates to ``mib`` MiB of one JSON string: one small member
    repeated (gzip readers inflate every member of a file in turn)."""
    block = gzip.compress(b"A" * (1 << 20), compresslevel=9)
    return gzip.compress(b'["') + block * mib + gzip.compress(b'"]')


def _hex_rows(nbytes: int) -> bytes:
    """Valid records of incompressible-looking text (gzip gets about 2x): not a bomb."""
    rows, size, i = [], 0, 0
    while size < nbytes:
        row = {"prompt": hashlib.sha256(str(i).encode()).hexdigest() * 8, "output": "ok"}
        rows.append(row)
        size += 560
        i += 1
    return _j(rows)


def tokenizer_cases() -> Iterator[Case]:
    good = {"x.json": _j(GOOD_ROWS)}
    yield Case(
        "data:tokenizer-dir-empty",
        (*RUN_FILE, "{tmp}/x.json"),
        files={**good, "tok/README": b""},
        env={"WORKLOAD_EVAL_TOKENIZER_DIR": "{tmp}/tok"},
        expect="tokenizer",
    )
    yield Case(
        "data:tokenizer-dir-missing",
        (*RUN_FILE, "{tmp}/x.json"),
        files=good,
        env={"WORKLOAD_EVAL_TOKENIZER_DIR": "{tmp}/none"},
        expect="WORKLOAD_EVAL_TOKENIZER_DIR",
    )


def limit_cases() -> Iterator[Case]:
    """Data files past the size limit: a bomb (caught by its ratio, whatever the limit) and
    honest files past a lowered limit (caught by their size)."""
    yield Case(
        "data:gzip-bomb-1GiB",
        (*RUN_FILE, "{tmp}/bomb.json.gz"),
        files={"bomb.json.gz": gzip_bomb()},
        expect="inflates",
    )
    lowered = {"WORKLOAD_EVAL_MAX_DATA_BYTES": "1000000"}
    yield Case(
        "data:json-past-lowered-limit",
        (*RUN_FILE, "{tmp}/big.json"),
        files={"big.json": _hex_rows(2_000_000)},
        env=lowered,
        expect="WORKLOAD_EVAL_MAX_DATA_BYTES",
    )
    yield Case(
        "data:gzip-past-lowered-limit",
        (*RUN_FILE, "{tmp}/big.json.gz"),
        files={"big.json.gz": gzip.compress(_hex_rows(3_000_000))},
        env=lowered,
        expect="unpacks",
    )
    yield Case(
        "data:bad-limit-variable",
        (*RUN_FILE, "{tmp}/x.json"),
        files={"x.json": _j(GOOD_ROWS)},
        env={"WORKLOAD_EVAL_MAX_DATA_BYTES": "lots"},
        expect="WORKLOAD_EVAL_MAX_DATA_BYTES",
    )


# ----------------------------------------------------------------------------- perf profiles

PROFILE = {
    "format": "workload-eval-perf-profile/1",
    "prefill": [{"num_seqs": 1, "tokens": 128, "sum_sq_tokens": 16384, "time_s": 0.012}],
    "decode": [{"batch_size": 8, "context_tokens": 1024, "time_s": 0.0051}],
}


def _profile_with(section: str, key: str, value_text: str) -> bytes:
    text = json.dumps(PROFILE)
    old = json.dumps(PROFILE[section][0][key])  # type: ignore[index]
    anchor = f'"{key}": {old}'
    assert anchor in text
    return text.replace(anchor, f'"{key}": {value_text}', 1).encode()


PROFILES: list[tuple[str, bytes, str]] = [
    ("time-infinity", _profile_with("prefill", "time_s", "Infinity"), "Infinity"),
    ("time-nan", _profile_with("decode", "time_s", "NaN"), "NaN"),
    ("time-negative", _profile_with("decode", "time_s", "-0.5"), "time_s"),
    ("time-zero", _profile_with("prefill", "time_s", "0"), "time_s"),
    ("time-1e308", _profile_with("prefill", "time_s", "1e308"), "time_s"),
    ("time-text", _profile_with("prefill", "time_s", '"fast"'), "time_s"),
    ("tokens-2**70", _profile_with("prefill", "tokens", str(2**70)), "tokens"),
    ("batch-negative", _profile_with("decode", "batch_size", "-8"), "batch_size"),
    ("no-prefill-points", _j({**PROFILE, "prefill": []}), "prefill"),
    ("wrong-format", _j({**PROFILE, "format": "other/2"}), "format"),
    ("a-list", b"[1, 2]", "profile"),
    ("not-utf8", b'{"format": "workload-eval-perf-profile/1", "model": "\xff"}', "UTF-8"),
    ("duplicate-key", b'{"format": "workload-eval-perf-profile/1", "format": "x"}', "duplicate"),
    ("deep", b"[" * 50_000 + b"]" * 50_000, "nested"),
    ("truncated", json.dumps(PROFILE).encode()[:-5], "invalid JSON"),
]


def profile_cases() -> Iterator[Case]:
    base = ("run", "--model", "opt-13b", "--kv-blocks", "643", "--workload", "alpaca")
    for name, data, expect in PROFILES:
        yield Case(
            f"profile:{name}",
            (*base, "--num-requests", "5", "--perf-profile", "{tmp}/p.json", "--out", OUT),
            files={"p.json": data},
            expect=expect,
        )
    yield Case(
        "profile:missing",
        (*base, "--num-requests", "5", "--perf-profile", "{tmp}/none.json", "--out", OUT),
        expect="none.json",
    )


# ----------------------------------------------------------------------------- model configs

CONFIG = {
    "model_type": "llama",
    "hidden_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "intermediate_size": 1024,
    "vocab_size": 32000,
    "max_position_embeddings": 2048,
}

CONFIGS: list[tuple[str, bytes, str]] = [
    ("hidden-size-text", _j({**CONFIG, "hidden_size": "big"}), "hidden_size"),
    ("hidden-size-negative", _j({**CONFIG, "hidden_size": -512}), "hidden_size"),
    ("hidden-size-zero", _j({**CONFIG, "hidden_size": 0}), "hidden_size"),
    ("hidden-size-float", _j({**CONFIG, "hidden_size": 512.5}), "hidden_size"),
    ("hidden-size-2**70", _j({**CONFIG, "hidden_size": 2**70}), "hidden_size"),
    ("layers-bool", _j({**CONFIG, "num_hidden_layers": True}), "num_hidden_layers"),
    ("heads-above-hidden", _j({**CONFIG, "num_attention_heads": 1024}), "heads"),
    ("kv-heads-above-heads", _j({**CONFIG, "num_key_value_heads": 16}), "heads"),
    ("vocab-missing", _j({k: v for k, v in CONFIG.items() if k != "vocab_size"}), "vocab_size"),
    ("a-list", b"[]", "object"),
    ("not-utf8", b'{"model_type": "\xfe"}', "UTF-8"),
    ("nan", json.dumps(CONFIG).replace("512", "NaN", 1).encode(), "NaN"),
    ("truncated", b'{"hidden_size": 5', "invalid JSON"),
    # absurd but well-formed sizes: bounded at ~10x the largest published model
    ("a-million-layers", _j({**CONFIG, "num_hidden_layers": 1_000_000}), "num_hidden_layers"),
    ("hidden-size-1e8", _j({**CONFIG, "hidden_size": 100_000_000}), "hidden_size"),
    ("vocab-1e9", _j({**CONFIG, "vocab_size": 1_000_000_000}), "vocab_size"),
    ("a-million-experts", _j({**CONFIG, "num_local_experts": 1_000_000, "num_experts_per_tok": 2}), "experts"),
    ("a-thousand-trillion-parameters", _j({**CONFIG, "num_hidden_layers": 1000, "hidden_size": 131072, "num_attention_heads": 1024, "num_key_value_heads": 1024, "intermediate_size": 1 << 20}), "parameters"),
]  # fmt: skip


def config_cases() -> Iterator[Case]:
    for name, data, expect in CONFIGS:
        yield Case(
            f"model-config:{name}",
            (
                *("run", "--model", "{tmp}/m/config.json", "--kv-blocks", "643"),
                *("--workload", "alpaca", "--num-requests", "5", "--out", OUT),
            ),
            files={"m/config.json": data},
            expect=expect,
        )
