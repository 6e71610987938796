"""Weir's inference sidecar, by layer: `codec` < `serving` < `http` < `server` (see README.md).

Kept free of imports: the CLI reads `sidecar.settings` and `sidecar.serving.generation`
without loading ONNX Runtime or prometheus_client.
"""
