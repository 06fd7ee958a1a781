"""Measurement helpers behind `attrnet benchmark` and `benchmarks/run.py`.

`stats` (timing loops, percentiles), `rows` (one result row per backend x
precision x batch size x mode), `table` (rich rendering), `jpegs` (generated
JPEG folders), `models` (the ONNX file for each precision), `runner` (the
benchmark itself), `machine` (what the figures were measured on).
"""
