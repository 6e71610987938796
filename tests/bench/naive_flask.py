"""Baseline (a): the lab server a data scientist writes first.

Flask's own `app.run()` (threaded development server), V2-shaped JSON in and out, one ONNX Runtime
call per request with default session options. No batching, no validation worth the name.

    python -m tests.bench.naive_flask --models models --port 8000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime as ort
from flask import Flask, jsonify, request


def create_app(models_dir: Path) -> Flask:
    sessions = {
        (path.parent.parent.name, path.parent.name): ort.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        for path in sorted(models_dir.glob("*/*/model.onnx"))
    }
    app = Flask(__name__)

    @app.get("/v2/health/ready")
    def ready():  # type: ignore[no-untyped-def]
        return jsonify({"ready": True})

    @app.post("/v2/models/<model>/versions/<version>/infer")
    def infer(model: str, version: str):  # type: ignore[no-untyped-def]
        session = sessions[(model, version)]
        body = request.get_json()
        feeds = {
            inp["name"]: np.array(inp["data"], dtype=np.float32).reshape(inp["shape"])
            for inp in body["inputs"]
        }
        names = [o.name for o in session.get_outputs()]
        results = session.run(names, feeds)
        return jsonify(
            {
                "model_name": model,
                "model_version": version,
                "id": body.get("id", ""),
                "outputs": [
                    {
                        "name": n,
                        "shape": list(r.shape),
                        "datatype": "FP32",
                        "data": r.ravel().tolist(),
                    }
                    for n, r in zip(names, results, strict=True)
                ],
            }
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    create_app(args.models).run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
