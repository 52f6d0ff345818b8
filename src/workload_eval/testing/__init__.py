"""Test utilities shipped with the package: an OpenAI-compatible server that answers instantly.

See :mod:`workload_eval.testing.instant_server` (kept out of this module so ``python -m`` runs it
cleanly).
"""
