"""Baseline (b): the fastest honest Python server, with none of Weir's features.

A Falcon app on gunicorn's meinheld worker that calls ONNX Runtime once per request: no
validation, no batching, no metrics, no error mapping. It speaks just enough V2 (JSON, and the
binary tensor extension in and out) to answer the benchmark's requests. Sessions are created in
each worker after fork (no --preload), with the sidecar's session options (intra-op threads,
spinning off) and its JSON library (orjson when installed, as the sidecar uses it; set
WEIR_BENCH_JSON=stdlib for the standard library): the comparison isolates what Weir's
features cost, not a runtime setting or a faster parser.

    WEIR_BENCH_MODELS=models gunicorn -k meinheld.gmeinheld.MeinheldWorker -w 1 \
        -b 127.0.0.1:8000 tests.bench.bare_meinheld:app
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon
import numpy as np
import onnxruntime as ort

HEADER_LENGTH = "Inference-Header-Content-Length"


def _codec() -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """loads and dumps: orjson (numpy arrays serialized natively) unless told otherwise."""
    if os.environ.get("WEIR_BENCH_JSON", "orjson") == "orjson":
        try:
            import orjson
        except ImportError:
            pass
        else:
            return orjson.loads, lambda obj: orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.loads, lambda obj: json.dumps(obj, default=lambda a: a.tolist()).encode()


loads, dumps = _codec()


def _session(path: Path, threads: int, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class Infer:
    def __init__(self, models_dir: Path, threads: int, spinning: bool) -> None:
        self._sessions = {
            (p.parent.parent.name, p.parent.name): _session(p, threads, spinning)
            for p in sorted(models_dir.glob("*/*/model.onnx"))
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response, model: str, version: str) -> None:
        session = self._sessions[(model, version)]
        body = req.bounded_stream.read()
        header_length = req.get_header(HEADER_LENGTH)
        if header_length is None:
            request = loads(body)
            feeds = {
                i["name"]: np.asarray(i["data"], dtype=np.float32).reshape(i["shape"])
                for i in request["inputs"]
            }
        else:
            offset = int(header_length)
            request = loads(body[:offset])
            feeds = {}
            for i in request["inputs"]:
                size = i["parameters"]["binary_data_size"]
                raw = body[offset : offset + size]
                feeds[i["name"]] = np.frombuffer(raw, dtype="<f4").reshape(i["shape"])
                offset += size
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, feeds)
        head: dict[str, object] = {"model_name": model, "model_version": version}
        head["id"] = request.get("id", "")
        if request.get("parameters", {}).get("binary_data_output"):
            raws = [r.astype("<f4").tobytes() for r in results]
            head["outputs"] = [
                {"name": n, "shape": list(r.shape), "datatype": "FP32"}
                | {"parameters": {"binary_data_size": len(b)}}
                for n, r, b in zip(names, results, raws, strict=True)
            ]
            header = dumps(head)
            resp.set_header(HEADER_LENGTH, str(len(header)))
            resp.content_type = "application/octet-stream"
            resp.data = header + b"".join(raws)
            return
        head["outputs"] = [
            {"name": n, "shape": list(r.shape), "datatype": "FP32", "data": r.ravel()}
            for n, r in zip(names, results, strict=True)
        ]
        resp.content_type = falcon.MEDIA_JSON
        resp.data = dumps(head)


class Ready:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = b'{"ready": true}'


def create_app(models_dir: Path, threads: int, spinning: bool = False) -> falcon.App:
    app = falcon.App()
    app.add_route("/v2/health/ready", Ready())
    app.add_route(
        "/v2/models/{model}/versions/{version}/infer", Infer(models_dir, threads, spinning)
    )
    return app


app = create_app(
    Path(os.environ.get("WEIR_BENCH_MODELS", "models")),
    int(os.environ.get("WEIR_BENCH_INTRA_THREADS", "1")),
    os.environ.get("WEIR_BENCH_SPINNING", "0") == "1",
)
