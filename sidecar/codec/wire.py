"""The HTTP names of the V2 wire format: the binary extension's header and the body types."""

from __future__ import annotations

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
