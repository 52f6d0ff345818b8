"""Generated hostile workload descriptions: inline specs, workload files (YAML/JSON with a
``kind``), lengths-only files and traces, and output-length models."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

from harness import Case

RUN = (
    *("run", "--model", "opt-13b", "--kv-blocks", "643", "--no-progress"),
    *("--out", "{tmp}/out", "--num-requests", "5", "--workload"),
)
NEST = "(" * 5000 + "5" + ")" * 5000

INLINE: list[tuple[str, str, str]] = [
    ("length-1e30", "synthetic:prompt_tokens=1e30,output_tokens=5", "prompt_tokens"),
    ("length-negative", "synthetic:prompt_tokens=-5,output_tokens=5", "prompt_tokens"),
    ("length-nan", "synthetic:prompt_tokens=nan,output_tokens=5", "prompt_tokens"),
    ("uniform-backwards", "synthetic:prompt_tokens=uniform(5,1),output_tokens=5", "min"),
    ("normal-nan-stdev", "synthetic:prompt_tokens=normal(5,nan),output_tokens=5", "stdev"),
    ("normal-negative-stdev", "synthetic:prompt_tokens=normal(5,-1),output_tokens=5", "stdev"),
    ("lognormal-1e300", "synthetic:prompt_tokens=lognormal(1e300,1e300),output_tokens=5", "mean"),
    ("uniform-five-args", "synthetic:prompt_tokens=uniform(1,2,3,4,5),output_tokens=5", "uniform"),
    ("deep-parentheses", f"synthetic:prompt_tokens={NEST},output_tokens=5", "prompt_tokens"),
    ("empirical-missing-file", "synthetic:prompt_tokens=empirical({tmp}/none.csv,x),output_tokens=5", "none.csv"),
    ("seed-negative", "synthetic:prompt_tokens=5,output_tokens=5,seed=-1", "seed"),
    ("seed-1e30", "synthetic:prompt_tokens=5,output_tokens=5,seed=1e30", "seed"),
    ("num-requests-1e12", "synthetic:prompt_tokens=5,output_tokens=5,num_requests=1e12", "num_requests"),
    ("missing-output", "synthetic:prompt_tokens=5", "output_tokens"),
    ("empty", "synthetic:", "prompt_tokens"),
    ("bare-equals", "synthetic:=", "KEY=VALUE"),
    ("duplicate-key", "synthetic:prompt_tokens=5,prompt_tokens=6,output_tokens=5", "twice"),
    ("turns-1e9", "sessions:turns=1e9,prompt_tokens=5,output_tokens=5", "turns"),
    ("think-time-inf", "sessions:turns=3,prompt_tokens=5,output_tokens=5,think_time=inf", "think_time"),
    ("prefix-pool-1e10", "shared_prefix:num_groups=100000,prompts_per_group=100000", "prompts"),
    ("prefix-no-groups", "shared_prefix:num_groups=0", "num_groups"),
    ("trace-not-a-data-file", "trace:file=/etc/passwd", "unsupported"),
    ("undecodable-key", "synthetic:prompt_tokens=5,output_tokens=5,\udcff=1", "KEY=VALUE"),
]  # fmt: skip

BOMB = (
    b"a: &a [1,1,1,1,1,1,1,1,1]\n"
    + b"".join(
        f"{n}: &{n} [{','.join(['*' + p] * 9)}]\n".encode()
        for p, n in zip("abcde", "bcdef", strict=True)
    )
    + b"kind: synthetic\nprompt_tokens: 5\noutput_tokens: 5\nx: *f\n"
)

FILES: list[tuple[str, str, bytes, str]] = [
    ("spec-duplicate-key", "w.yaml", b"kind: synthetic\nprompt_tokens: 5\nprompt_tokens: 6\noutput_tokens: 5\n", "duplicate"),
    ("spec-alias-bomb", "w.yaml", BOMB, "alias"),
    ("spec-json-nan", "w.json", b'{"kind": "synthetic", "prompt_tokens": NaN, "output_tokens": 5}', "NaN"),
    ("spec-a-list", "w.yaml", b"- 1\n- 2\n", "mapping"),
    ("spec-no-kind", "w.yaml", b"prompt_tokens: 5\n", "kind"),
    ("spec-kind-int", "w.yaml", b"kind: 5\n", "kind"),
    ("spec-not-utf8", "w.yaml", b"kind: synthetic\nprompt_tokens: 5\noutput_tokens: \xff\n", "UTF-8"),
    ("spec-trace-missing", "w.yaml", b"kind: trace\nfile: nope.csv\n", "nope.csv"),
    ("spec-trace-is-itself", "w.yaml", b"kind: trace\nfile: w.yaml\n", "unsupported"),
    ("corpus-workload-int", "w.json", json.dumps({"scenario": {"workload": 5}}).encode(), "scenario.workload"),
    ("corpus-workload-inf", "w.json", b'{"scenario": {"workload": {"kind": "synthetic", "prompt_tokens": 1e400, "output_tokens": 5}}}', "prompt_tokens"),
    ("lengths-negative", "l.csv", b"prompt_len,output_len\n-5,3\n", "prompt_len"),
    ("lengths-nan", "l.csv", b"prompt_len,output_len\nnan,3\n", "prompt_len"),
    ("lengths-huge", "l.csv", b"prompt_len,output_len\n99999999999999999999,3\n", "prompt_len"),
    ("lengths-arrival-inf", "l.csv", b"prompt_len,output_len,arrival_s\n5,3,inf\n6,3,1\n", "arrival_s"),
    ("lengths-ragged", "l.csv", b"prompt_len,output_len\n5\n", "fields"),
    ("lengths-turn-text", "l.csv", b"prompt_len,output_len,session_id,turn\n5,3,abc,x\n", "turn"),
    ("lengths-prefix-huge", "l.csv", b"prompt_len,output_len,prefix_group,prefix_len\n5,3,1,99999999999\n", "prefix_len"),
    ("lengths-jsonl-nan", "l.jsonl", b'{"prompt_len": NaN, "output_len": 3}\n', "NaN"),
    ("lengths-jsonl-bomb", "l.jsonl.gz", gzip.compress(b'{"prompt_len": 5, "output_len": 3, "x": "' + b"A" * (50 << 20) + b'"}\n'), "inflates"),
    ("lengths-jsonl-deep", "l.jsonl", b"[" * 100_000 + b"\n", "nested"),
]  # fmt: skip

OUTPUT_LEN_MODELS = [
    "eos:abc",
    "eos:-5",
    "eos:nan",
    "eos:1e300",
    "eos:5,early=2",
    "eos:5,early=nan",
    "eos:5,early_len=-1",
    "eos:",
    "recorded:{tmp}/none",
    "recorded:{tmp}",
    "bogus",
]


def workload_cases() -> Iterator[Case]:
    for name, text, expect in INLINE:
        yield Case(f"workload-inline:{name}", (*RUN, text), expect=expect)
    for name, fname, data, expect in FILES:
        extra = ("--schedule", "trace") if "arrival" in name else ()
        yield Case(
            f"workload-file:{name}",
            (*RUN, "{tmp}/" + fname, *extra),
            files={fname: data},
            expect=expect,
        )
    for model in OUTPUT_LEN_MODELS:
        yield Case(
            f"output-len-model:{model}",
            (*RUN, "alpaca", "--output-len-model", model),
            expect="--output-len-model",
        )
    yield Case(
        "workloads-export:suffix",
        ("workloads", "export", "alpaca", "-m", "opt-13b", "-n", "5", "--out", "{tmp}/x.xlsx"),
        expect="--out",
    )
    yield Case(
        "workloads-export:out-under-a-file",
        ("workloads", "export", "alpaca", "-m", "opt-13b", "-n", "5", "--out", "/dev/null/x.csv"),
        expect="/dev/null",
    )
