"""The catalog as a table (`workloads list`): record counts from local files or profiles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from workload_eval.workloads import cache, profiles
from workload_eval.workloads.builders import build
from workload_eval.workloads.catalog import WORKLOADS, WorkloadSpec
from workload_eval.workloads.families import FAMILIES
from workload_eval.workloads.loader import data_dir, find_local_file
from workload_eval.workloads.readers import read_table


def count_records(spec: WorkloadSpec, data_dir_: str | Path | None = None) -> int | None:
    """Requests the workload builds from its local file (before length filtering), or the
    shipped profile's count; None when neither is there."""
    local = find_local_file(spec, data_dir(data_dir_))
    if local is not None:
        key = cache.cache_key(count=spec.model_dump(), source=cache.file_identity(local))
        if (hit := cache.read_cached(key)) is not None:
            return int(hit[1]["records"])
        n = len(build(spec, read_table(local), str(local)))
        cache.write_cached(key, pd.DataFrame({"records": [n]}), {"records": n})
        return n
    for family in profiles.FAMILIES:
        if profiles.has_profile(spec.name, family):
            return len(profiles.load_profile(spec.name, family))
    return None


def list_workloads(data_dir: str | Path | None = None) -> pd.DataFrame:
    """Catalog and use-case families: name, use case, source, records (None: unknown), how built."""
    rows = []
    for spec in WORKLOADS.values():
        rows.append(
            {
                "name": spec.name,
                "use_case": spec.use_case,
                "source": spec.source,
                "records": count_records(spec, data_dir),
                "builds": spec.builds,
                "arrivals": spec.has_arrivals,
                "profile": spec.profiled,
            }
        )
    for fam in FAMILIES.values():
        rows.append(
            {
                "name": fam.name,
                "use_case": fam.use_case,
                "source": fam.source,
                "records": fam.spec.num_prompts,
                "builds": fam.builds,
                "arrivals": False,
                "profile": False,
            }
        )
    df = pd.DataFrame(rows)
    df["records"] = df["records"].astype("Int64")
    return df
