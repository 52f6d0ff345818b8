"""llm-workload-eval: evaluate LLM inference systems under realistic use-case workloads."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llm-workload-eval")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
