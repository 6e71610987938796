"""Serving, free of any transport: the data plane for every V2 operation, signature
validation, dynamic batching, loaded model versions, the repository and readiness.

Above the codec, below HTTP and the server (codec < serving < http < server): nothing here
imports Falcon, gunicorn, meinheld or `sidecar.settings`; the server layer hands in explicit
values and the batching driver. Kept free of imports: `generation` and `model_config` are read
by the CLI without loading ONNX Runtime.
"""
