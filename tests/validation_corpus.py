"""Small experiments in the workload-eval-measured/1 format, written into a test's tmp folder."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

LLAMA_2_7B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
    "tie_word_embeddings": False,
}


def stage(k: int, rate: float, count: int, **metrics: float) -> dict[str, Any]:
    base = {
        "ttft_mean": 0.03,
        "ttft_p50": 0.03,
        "ttft_p90": 0.04,
        "ttft_p99": 0.05,
        "e2e_mean": 1.0,
        "e2e_p50": 1.0,
        "e2e_p90": 1.2,
        "e2e_p99": 1.4,
        "decode_time_per_token_mean": 0.015,
    }
    base.update(metrics)
    return {"stage": k, "rate": rate, "count": count, "num_failed": 0, "overloaded": False, **base}


def experiment(exp_id: str, **changes: Any) -> dict[str, Any]:
    """A two-stage shared-prefix run of Llama-2-7B on one H100 (vLLM 0.15.1, V1)."""
    exp: dict[str, Any] = {
        "format": "workload-eval-measured/1",
        "id": exp_id,
        "set": "test",
        "source": "tests",
        "licence": "MIT",
        "status": "ok",
        "scenario": {
            "gpu": "h100-sxm",
            "gpu_memory_gb": 80,
            "num_gpus": 1,
            "model": {
                "name": "meta-llama/Llama-2-7b-hf",
                "config": copy.deepcopy(LLAMA_2_7B),
                "config_source": "tests",
            },
            "quantization": None,
            "engine": {
                "name": "vllm",
                "version": "0.15.1",
                "build": "tests",
                "engine_generation": "V1",
                "tensor_parallel_size": 1,
                "pipeline_parallel_size": 1,
                "data_parallel_size": 1,
                "enable_expert_parallel": False,
                "max_model_len": 4096,
                "max_num_batched_tokens": 2048,
                "max_num_seqs": 128,
                "block_size": 16,
                "num_gpu_blocks": 7463,
                "gpu_memory_utilization": 0.9,
                "enable_prefix_caching": True,
                "enable_chunked_prefill": True,
                "cpu_offload_gib": 0.0,
                "speculative_decoding": None,
                "speculative_config": None,
                "kv_cache_dtype": "auto",
                "dtype": "float16",
            },
            "workload": {
                "kind": "shared_prefix",
                "num_groups": 2,
                "prompts_per_group": 3,
                "system_prompt_len": 100,
                "question_len": 60,
                "output_len": 20,
                "multi_turn": False,
                "effective_unknown": False,
                "ignore_eos": True,
                "api": "completion",
                "streaming": True,
                "measured_prompt_len": {"mean": 168.0, "min": 165.0, "max": 171.0},
            },
            "load": {
                "kind": "constant",
                "stages": [{"rate": 2.0, "duration_s": 10.0}, {"rate": 4.0, "duration_s": 5.0}],
                "stage_gap_s": 2.0,
                "arrival_process": "inference-perf ConstantLoadTimer",
            },
            "inferred_fields": [],
        },
        "targets": {
            "measurement_point": "client_http",
            "stages": [stage(0, 2.0, 20), stage(1, 4.0, 20)],
            "summary": None,
            "derived_metrics": ["decode_time_per_token_mean"],
            "estimate": None,
            "metric_notes": "",
        },
        "peers": None,
        "notes": "",
        "evidence": {"anything": ["goes", 1, None]},
    }
    for dotted, value in changes.items():
        node = exp
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    return exp


def write(folder: Path, exp: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{exp['id']}.json"
    path.write_text(json.dumps(exp))
    return path
