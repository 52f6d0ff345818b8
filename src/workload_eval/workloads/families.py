"""Named use-case workloads defined by a published shape rather than a dataset.

The four inference-perf profiles of the measured corpus (``../shared/real-gpu``: general,
codegen, roleplay, reasoning) come from inference-sim/training@ed5c1d2
``default_args/<run>/profile.yaml`` (``data.shared_prefix``). The inference-perf build that
ran them (E0, see INFERENCE_PERF_SHARED_PREFIX.md §0) ignored the profiles' user and
multi-turn keys, so what really ran is 10 groups x 10 prompts, single-turn, with the
profile's system/question/output lengths (``results/config.yaml``); that is the plain name.
``<name>_multi_turn`` is the profile as written (its groups x users, multi-turn), as a
newer inference-perf (>= v0.4.0) runs it and as BLIS and sim-to-real simulate it.
"""

from __future__ import annotations

from dataclasses import dataclass

from workload_eval.workloads.shared_prefix import SharedPrefixWorkload

PROFILE_SOURCE = "inference-perf profile (inference-sim/training@ed5c1d2)"


@dataclass(frozen=True)
class Family:
    """A named workload shape with its use case and where the numbers come from."""

    name: str
    use_case: str
    spec: SharedPrefixWorkload
    source: str
    builds: str


def _profile(
    name: str, use_case: str, groups: int, users: int, system: int, question: int, output: int
) -> list[Family]:
    lengths = dict(system_prompt_len=system, question_len=question, output_len=output)
    shape = f"system/question/output {system}/{question}/{output}"
    return [
        Family(
            name=name,
            use_case=f"{use_case} (as run)",
            spec=SharedPrefixWorkload(num_groups=10, prompts_per_group=10, **lengths),
            source=PROFILE_SOURCE,
            builds=f"shared_prefix 10x10 single-turn, {shape}",
        ),
        Family(
            name=f"{name}_multi_turn",
            use_case=f"{use_case} (as written)",
            spec=SharedPrefixWorkload(
                num_groups=groups, prompts_per_group=users, multi_turn=True, **lengths
            ),
            source=PROFILE_SOURCE,
            builds=f"shared_prefix {groups}x{users} multi-turn, {shape}",
        ),
    ]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        *_profile("general", "general chat", 9, 5, 100, 447, 248),
        *_profile("codegen", "code generation", 11, 4, 100, 466, 247),
        *_profile("roleplay", "role-play chat", 10, 5, 150, 600, 251),
        *_profile("reasoning", "reasoning", 23, 1, 100, 934, 1448),
    ]
}


def get_family(name: str) -> Family | None:
    return FAMILIES.get(name.strip().lower().replace("-", "_"))
