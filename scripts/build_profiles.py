"""Derive the shipped token-length profiles from the datasets (lengths only, never text).

    python scripts/build_profiles.py --data-dir ../shared/datasets \
        --tokenizer-dir ../shared/tokenizers
    python scripts/build_profiles.py --source hub ...   # the full hub datasets, when online

Writes src/workload_eval/data/profiles/<workload>.<family>.parquet and manifest.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from workload_eval.models import resolve_model
from workload_eval.storage import atomic_write_json, atomic_write_parquet
from workload_eval.workloads.catalog import WORKLOADS
from workload_eval.workloads.loader import prepare
from workload_eval.workloads.profiles import MANIFEST, profiles_dir
from workload_eval.workloads.selection import CATEGORY

SEED_WORKLOADS = ("alpaca", "dolly", "cnn_dailymail", "sharegpt", "sharegpt_chat", "long_document")
FAMILY_MODELS = {"opt": "opt-13b", "llama-2": "llama-2-13b"}
# Profiles derived from another catalog entry's real data, for the families its lengths were
# counted with: long_document offline = arXiv summarization token lengths (Llama-2 tokenizer;
# Vidur's processed-trace format, ../shared/datasets/extra).
DERIVED_FROM = {"long_document": ("arxiv_summarization", ("llama-2",))}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--tokenizer-dir", default=None)
    ap.add_argument("--source", default="local", choices=["local", "hub"])
    ap.add_argument("--out", type=Path, default=profiles_dir())
    ap.add_argument("--workloads", nargs="*", default=list(SEED_WORKLOADS))
    args = ap.parse_args()

    manifest_path = args.out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name in args.workloads:
        spec = WORKLOADS[name]
        families = FAMILY_MODELS
        if name in DERIVED_FROM:
            source_name, fams = DERIVED_FROM[name]
            spec = WORKLOADS[source_name]
            families = {f: FAMILY_MODELS[f] for f in fams}
        for family, model in families.items():
            t0 = time.perf_counter()
            df, meta = prepare(
                spec,
                resolve_model(model),
                source=args.source,
                data_dir_=args.data_dir,
                tokenizer_dir=args.tokenizer_dir,
                use_cache=False,
            )
            cols = ["session_id", "turn"] if spec.builder == "chat" else []
            out = df[[*cols, "prompt_len", "output_len"]].astype("int32")
            if CATEGORY in df.columns:  # a category mix selects on it (selection.py)
                out[CATEGORY] = df[CATEGORY].astype(str).to_numpy()
            path = args.out / f"{name}.{family}.parquet"
            atomic_write_parquet(path, out)
            src = Path(meta["where"])
            manifest[f"{name}.{family}"] = {
                "workload": name,
                "derived_from": spec.name,
                "tokenizer_family": family,
                "rows": len(out),
                "source": meta["source"],
                "source_file": src.name,
                "source_sha256": _sha256(src) if src.is_file() else meta["source_id"],
                "columns": list(out.columns),
                "script": "scripts/build_profiles.py",
            }
            print(f"{path.name}: {len(out)} rows in {time.perf_counter() - t0:.1f}s")
    atomic_write_json(manifest_path, manifest)


if __name__ == "__main__":
    main()
