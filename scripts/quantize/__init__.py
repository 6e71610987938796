"""`weir quantize`: an INT8 or FP16 copy of a model version, judged before it is written.

One concern a module: `cpu.py` (the CPU features that decide the int8 kernels), `data.py` (the
rows to calibrate and judge on), `convert.py` (ONNX Runtime's quantization call), `sessions.py`
(sessions as a CPU sidecar runs them), `timing.py` (both versions timed side by side),
`accuracy.py` (the loss and the tolerance decision), `report.py` (the JSON and the table),
`publish.py` (a version folder appears whole or not at all), `run.py` (one quantization, start
to end), `commands.py` (the command line).
"""
