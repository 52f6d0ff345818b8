"""Scoring the simulator against measured corpora (``workload-eval-measured/1``).

``corpus`` reads and validates the files, ``scenario`` turns a serving setup into an
EngineConfig, ``streams`` rebuilds the request stream (load stages, shared-prefix prompts,
traces), ``measurement`` adds the path between the engine and where latency was measured,
``scoring`` makes cells and error summaries, ``run`` drives it all, ``outputs`` shows and
writes the results.
"""

from workload_eval.validation.run import ExperimentResult, run_corpus, simulate_experiment

__all__ = ["ExperimentResult", "run_corpus", "simulate_experiment"]
