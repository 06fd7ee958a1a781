"""Helpers of benchmarks/methods.py: data and runs (`common`), one job per training run (`jobs`), tables (`report`)."""
