"""Measurement analysis beyond one number per metric: confidence intervals (``intervals``),
the steady-state window of an online run (``steady``), time slices (``slices``, on the
per-window sums of ``windows``), intervals across seeds (``seeds``) and whether a
comparison's conclusion depends on the workload (``compare``). The methods and their
sources are written up in docs/measurement.md."""
