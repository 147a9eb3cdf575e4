"""Speed measurements, printed as ratios against a baseline measured in the same run (docs/performance.md).

A package, run from the repository root as modules (``python -m benchmarks.attacks``): the root is then on the
import path, so the benchmarks use this checkout's `sipat`, `backend` and the shared test helpers (`tests.`)
without editing `sys.path`.
"""
