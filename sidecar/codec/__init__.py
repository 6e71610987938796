"""The Open Inference Protocol (KServe V2) codec: bytes in, decoded tensors out, and back.

The lowest layer of the sidecar (codec < serving < http < server): it knows the wire format
and nothing of models, batching or HTTP frameworks. Kept free of imports so that importing a
module of it loads only what that module needs.
"""
