"""Generated hostile command lines: every numeric option of `run`, `capacity` and `sweep`
with values past its range, of the wrong type, non-finite or absurdly large, plus the
option combinations a run would only refuse once it started."""

from __future__ import annotations

from collections.abc import Iterator

from harness import Case

OUT = "{tmp}/out"
RUN = ("run", "--model", "opt-13b", "--workload", "alpaca", "--no-progress", "--out", OUT)
SIM = (*RUN, "--kv-blocks", "643")
CAPACITY = (
    "capacity",
    "--model",
    "opt-13b",
    "--kv-blocks",
    "643",
    "--workload",
    "alpaca",
    "--duration",
    "10",
)

# Values no integer option accepts, and values no float option accepts.
BAD_INT = ("-1", "0", "1e20", "10" * 12, str(2**64), str(-(2**70)), "1.5", "nan", "abc", "")
BAD_FLOAT = ("0", "-1", "nan", "inf", "-inf", "1e309", "abc", "")

# (option, extra args it needs, bad values, what the error must name)
RUN_OPTIONS: list[tuple[str, tuple[str, ...], tuple[str, ...], str]] = [
    ("--num-requests", (), (*BAD_INT, "1000000000", str(10**30)), "num"),
    ("--kv-blocks", (), (*BAD_INT, str(10**20)), "kv"),
    ("--gpu-memory-utilization", (), (*BAD_FLOAT, "1.5"), "utilization"),
    ("--block-size", (), (*BAD_INT, "100000"), "block"),
    ("--max-num-batched-tokens", (), BAD_INT, "batched"),
    ("--max-num-seqs", (), BAD_INT, "seqs"),
    ("--max-model-len", (), (*BAD_INT, "1"), "len"),
    ("--n", (), (*BAD_INT, "100000"), "n"),
    ("--seed", ("--request-rate", "5", "--duration", "2"), ("-1", str(2**32), str(2**64), str(2**70), "abc"), "seed"),
    ("--request-rate", ("--duration", "10"), (*BAD_FLOAT, "1e12"), "rate"),
    ("--duration", ("--request-rate", "1"), (*BAD_FLOAT, "1e12"), "duration"),
    ("--burstiness", ("--request-rate", "2", "--duration", "5"), BAD_FLOAT, "burstiness"),
    ("--think-time", ("--schedule", "sessions", "--workload", "sharegpt_chat", "--request-rate", "1"), ("-1", "nan", "inf", "abc"), "think"),
    ("--max-requests", (), ("0", "-5", "abc", str(10**30)), "max-requests"),
]  # fmt: skip

ENGINE_OPTIONS = [
    "max_paddings=-100",
    "max_paddings=abc",
    "max_paddings=1e20",
    f"max_paddings={2**70}",
    "max_paddings=null",
    'max_paddings={"a": 1}',
    "max_paddings=true",
    "walk=sideways",
    "skip_ahead=maybe",
    "record_token_times=2",
    "perf_profile=/nonexistent/option-profile.json",
    "no_such_option=1",
    "=1",
    "novalue",
]

SLOS = ["ttft<=-1", "ttft<=nan", "ttft<=inf", "ttft<=1e999", "bogus<=1", "ttft", "ttft<=0"]

COMBINATIONS: list[tuple[str, tuple[str, ...], str]] = [
    ("chunked-on-vllm-0.2", (*SIM, "--num-requests", "5", "--enable-chunked-prefill"), "vllm-v1"),
    ("prefix-on-vllm-0.2", (*SIM, "--num-requests", "5", "--enable-prefix-caching"), "prefix"),
    ("prefix-on-vllm-v0", (*SIM, "--num-requests", "5", "--policy", "vllm-v0", "--enable-prefix-caching"), "prefix"),
    ("v1-budget-below-model-len-without-chunking", (*SIM, "--num-requests", "5", "--policy", "vllm-v1", "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4"), "max_model_len"),
    ("openai-without-base-url", (*RUN, "--engine", "openai", "--num-requests", "5"), "base-url"),
    ("openai-bad-ipv6-url", (*RUN, "--engine", "openai", "--base-url", "http://[::1", "--num-requests", "5"), "base-url"),
    ("openai-ftp-url", (*RUN, "--engine", "openai", "--base-url", "ftp://h/", "--num-requests", "5"), "base-url"),
    ("openai-no-host", (*RUN, "--engine", "openai", "--base-url", "http://", "--num-requests", "5"), "base-url"),
    ("openai-missing-key-env", (*RUN, "--engine", "openai", "--base-url", "http://127.0.0.1:9", "--api-key-env", "NO_SUCH_KEY_VAR_X", "--num-requests", "5"), "NO_SUCH_KEY_VAR_X"),
    ("unknown-engine", (*RUN, "--engine", "tgi", "--num-requests", "5"), "engine"),
    ("unknown-model", (*SIM, "--model", "gpt-9", "--num-requests", "5"), "gpt-9"),
    ("unknown-gpu", (*SIM, "--gpu", "abacus", "--num-requests", "5"), "abacus"),
    ("unknown-workload", (*SIM, "--workload", "nope", "--num-requests", "5"), "nope"),
    ("too-few-kv-blocks", (*RUN, "--kv-blocks", "3", "--num-requests", "5"), "kv-blocks"),
    ("n-above-max-num-seqs", (*SIM, "--n", "8", "--max-num-seqs", "4", "--num-requests", "5"), "max-num-seqs"),
    ("both-kv-sizes", (*SIM, "--gpu-memory-utilization", "0.5", "--num-requests", "5"), "kv"),
    ("no-kv-size", (*RUN, "--num-requests", "5"), "kv"),
    ("trace-on-alpaca", (*SIM, "--schedule", "trace"), "arrival"),
    ("sessions-on-alpaca", (*SIM, "--schedule", "sessions", "--request-rate", "1"), "session"),
    ("rate-without-duration", (*SIM, "--request-rate", "5"), "duration"),
    ("missing-data-dir", (*SIM, "--num-requests", "5", "--data-dir", "{tmp}/nowhere"), "nowhere"),
    ("missing-tokenizer-dir", (*SIM, "--num-requests", "5", "--tokenizer-dir", "{tmp}/nowhere"), "nowhere"),
    ("local-source-without-data", (*SIM, "--num-requests", "5", "--workload-source", "local"), "local"),
    ("arrivals-above-limit", (*SIM, "--request-rate", "1000", "--duration", "2000"), "max-requests"),
    ("lowered-limit", (*SIM, "--num-requests", "50", "--max-requests", "10"), "max-requests"),
    ("seed-process-past-duration-limit", (*SIM, "--request-rate", "1e-6", "--num-requests", "3"), "s of arrivals"),
    ("out-is-a-file", (*SIM, "--num-requests", "5", "--out", "{tmp}/afile"), "afile"),
    ("out-under-a-file", (*SIM, "--num-requests", "5", "--out", "{tmp}/afile/sub"), "afile"),
    ("out-unwritable", (*SIM, "--num-requests", "5", "--out", "/proc/workload-eval-out"), "cannot write"),
    ("out-empty", (*SIM, "--num-requests", "5", "--out", ""), "--out"),
    ("unknown-option", (*SIM, "--num-requestz", "5"), "num-requestz"),
    ("undecodable-argv", (*SIM, "--workload", "bad\udcff\udcfename", "--num-requests", "5"), "bad"),
    ("newline-in-name", (*SIM, "--workload", "two\nlines\u2028here", "--num-requests", "5"), "two"),
]  # fmt: skip

CAPACITY_CASES: list[tuple[str, tuple[str, ...], str]] = [
    ("slo-negative", ("--slo", "ttft_p99<=-1"), "never"),
    ("slo-zero-latency", ("--slo", "ttft_p99<=0"), "never"),
    ("slo-nan", ("--slo", "ttft_p99<=nan"), "slo"),
    ("slo-huge", ("--slo", "ttft_p99<=1e999"), "finite"),
    ("slo-always", ("--slo", "request_throughput>=0"), "always"),
    ("slo-unknown-metric", ("--slo", "latency<=1"), "latency"),
    ("slo-attainment-above-one", ("--slo", "slo_attainment>=1.5"), "fraction"),
    ("rates-garbage", ("--slo", "ttft_p99<=1", "--rates", "a:b"), "rates"),
    ("rates-backwards", ("--slo", "ttft_p99<=1", "--rule", "seed-grid", "--rates", "5:1:1"), "stop"),
    ("rates-too-many", ("--slo", "ttft_p99<=1", "--rule", "seed-grid", "--rates", "1:1000000:0.001"), "rates"),
    ("rates-nan", ("--slo", "ttft_p99<=1", "--rule", "seed-grid", "--rates", "nan,1"), "rates"),
    ("seeds-negative", ("--slo", "ttft_p99<=1", "--seeds", "-1"), "seed"),
    ("seeds-huge", ("--slo", "ttft_p99<=1", "--seeds", str(2**70)), "seed"),
    ("tolerance-out-of-range", ("--slo", "ttft_p99<=1", "--tolerance", "2"), "tolerance"),
    ("tolerance-nan", ("--slo", "ttft_p99<=1", "--tolerance", "nan"), "tolerance"),
    ("start-zero", ("--slo", "ttft_p99<=1", "--start", "0"), "start"),
    ("start-inf", ("--slo", "ttft_p99<=1", "--start", "inf"), "start"),
    ("duration-huge", ("--slo", "ttft_p99<=1", "--duration", "1e12"), "duration"),
    ("duration-nan", ("--slo", "ttft_p99<=1", "--duration", "nan"), "duration"),
    ("repeat-band-nan", ("--slo", "ttft_p99<=1", "--repeat-band", "nan"), "repeat"),
    ("burstiness-without-gamma", ("--slo", "ttft_p99<=1", "--burstiness", "2"), "gamma"),
    ("max-paddings-negative", ("--slo", "ttft_p99<=1", "--engine-option", "max_paddings=-100"), "max_paddings"),
    ("out-is-a-file", ("--slo", "ttft_p99<=1", "--out", "{tmp}/afile"), "afile"),
    ("confidence-above-one", ("--slo", "ttft_p99<=1", "--confidence", "2"), "confidence"),
    ("confidence-nan", ("--slo", "ttft_p99<=1", "--confidence", "nan"), "confidence"),
    ("confidence-text", ("--slo", "ttft_p99<=1", "--confidence", "sure"), "confidence"),
    ("confidence-low", ("--slo", "ttft_p99<=1", "--confidence", "0.1"), "confidence"),
]  # fmt: skip


def cli_cases() -> Iterator[Case]:
    afile = {"afile": b"not a folder"}
    for option, extra, values, expect in RUN_OPTIONS:
        for v in values:
            base = SIM if option != "--kv-blocks" else RUN
            argv = (*base, *extra, option, v)
            if "--num-requests" not in argv and "--request-rate" not in argv:
                argv = (*argv, "--num-requests", "5")
            yield Case(f"run{option}={v!r}", argv, expect=expect)
    for item in ENGINE_OPTIONS:
        yield Case(
            f"run--engine-option={item!r}",
            (*SIM, "--num-requests", "5", "--engine-option", item),
            expect="option",
        )
    for slo in SLOS:
        yield Case(f"run--slo={slo!r}", (*SIM, "--num-requests", "5", "--slo", slo), expect="slo")
    for name, argv, expect in COMBINATIONS:
        yield Case(f"run:{name}", argv, files=afile, expect=expect)
    for name, extra, expect in CAPACITY_CASES:
        yield Case(f"capacity:{name}", (*CAPACITY, *extra), files=afile, expect=expect)
    yield Case(
        "workloads-list:missing-data-dir",
        ("workloads", "list", "--data-dir", "{tmp}/none"),
        expect="none",
    )
    yield Case(
        "workloads-describe:num-requests-1e9",
        ("workloads", "describe", "alpaca", "-m", "opt-13b", "-n", "1000000000"),
        expect="requests",
    )
    yield Case(
        "workloads-describe:seed-negative",
        ("workloads", "describe", "alpaca", "-m", "opt-13b", "-n", "5", "--seed", "-5"),
        expect="seed",
    )
    yield Case(
        "workloads-plot:num-requests-1e9",
        (
            "workloads",
            "plot",
            "alpaca",
            "-m",
            "opt-13b",
            "-n",
            "1000000000",
            "--out",
            "{tmp}/f.png",
        ),
        expect="requests",
    )
    yield Case(
        "reproduce:jobs-huge", ("reproduce", "--jobs", "100000", "--out", OUT), expect="jobs"
    )
    yield Case(
        "reproduce:calibration-missing",
        ("reproduce", "--quick", "--calibration-dir", "{tmp}/none", "--out", OUT),
        expect="calibration",
    )
    for width in ("0", "-5", "nan", "abc"):
        yield Case(
            f"run--slice-seconds={width}",
            (*SIM, "--num-requests", "5", "--slice-seconds", width),
            expect="slice-seconds",
        )
    yield Case("compare:missing", ("compare", "{tmp}/none", "--by", "model"), expect="none")
    yield Case(
        "compare:empty-folder",
        ("compare", "{tmp}/empty", "--by", "model"),
        files={"empty/readme.txt": b"nothing here"},
        expect="no results",
    )
    yield Case(
        "compare:capacity-without-searches",
        ("compare", "{tmp}/empty", "--by", "model", "--metric", "capacity_rate"),
        files={"empty/readme.txt": b"nothing here"},
        expect="capacity.parquet",
    )
    for jobs in ("0", "-1", "100000"):
        yield Case(
            f"sweep--jobs={jobs}",
            ("sweep", "{tmp}/spec.yaml", "--out", OUT, "--jobs", jobs),
            files={"spec.yaml": b"workloads: [alpaca]\n"},
            expect="jobs",
        )
