"""Benchmarks of enas-service (issue 6): run each as ``python -m bench.<name>``; see bench/README.md.

Imports nothing, so that ``bench.common`` and ``bench.service`` never pull torch.
"""
