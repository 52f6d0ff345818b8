"""Write the paper's OPT-13B measurements into the package (src/workload_eval/data/paper/).

The numbers are the seed paper's own (Papaioannou & Doudali, "The Importance of Workload
Choice in Evaluating LLM Inference Systems", EuroMLSys '24, doi 10.1145/3642970.3655823):
the processed outputs of its artifact, github.com/muse-research-lab/llm-inference-workload-eval,
MIT License, as collected in ../shared/calibration (see its README). Each table is copied
unchanged, in the same format, with a ``source`` field naming where it comes from and the
SHA-256 of the file it was copied from.

    .venv/bin/python scripts/build_paper_tables.py [--calibration-dir ../shared/calibration]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from workload_eval.paper_data import read_table

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "workload_eval" / "data" / "paper"
MODEL = "opt-13b"  # the only model whose measurements the project has (the others are scored)
SOURCE = (
    "Measured by Papaioannou & Doudali, 'The Importance of Workload Choice in Evaluating LLM "
    "Inference Systems', EuroMLSys '24 (doi 10.1145/3642970.3655823): the processed outputs "
    "of the paper's artifact, github.com/muse-research-lab/llm-inference-workload-eval "
    "(MIT License), as collected in the project's calibration data "
    "(../shared/calibration/README.md). Copied unchanged by scripts/build_paper_tables.py "
    "from {name} (sha256 {sha256})."
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calibration-dir", type=Path, default=REPO.parent / "shared" / "calibration")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for experiment in ("offline", "online"):
        src = args.calibration_dir / f"{MODEL}-{experiment}.json"
        raw = src.read_bytes()
        obj = json.loads(raw)
        read_table(raw.decode(), str(src), experiment=experiment)  # it must load as shipped
        obj["source"] = SOURCE.format(name=src.name, sha256=hashlib.sha256(raw).hexdigest())
        dst = OUT / src.name
        dst.write_text(json.dumps(obj, indent=1) + "\n")
        print(f"{dst.relative_to(REPO)}: {len(obj['data'])} workloads")


if __name__ == "__main__":
    main()
