"""A simulated study through the web loop (`python -m benchmarks.study_loop`, see its `__main__`)."""
