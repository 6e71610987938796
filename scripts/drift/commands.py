"""`weir drift capture MODEL VERSION` and `weir drift status [MODEL]`.

`capture` writes `reference.json` into the version's folder from what it answered so far: the
counts of its predicted classes and confidence buckets, from this runtime's edge and the
sidecars it relays (since they started), or from a Prometheus over a window (the fleet's).
The sidecars measure drift against it from their next scrape (`weir_prediction_drift`).
`status` prints each version's drift as the sidecars report it now.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from scripts.args import command_parser
from scripts.edge.admin_client import AdminClient, AdminError
from scripts.rollout.counts import Signals
from scripts.rollout.reference import MIN_ROWS, rows_of, write_from_signals
from scripts.rollout.signals import LocalSignals, PrometheusSignals, SignalsError
from scripts.runtime import RuntimeDir
from sidecar.serving.drift import REFERENCE_FILE


def parser() -> argparse.ArgumentParser:
    p = command_parser(
        "drift",
        "drift against a reference: capture one from a live version's predictions, or show "
        "each version's drift now",
    )
    p.add_argument("action", choices=["capture", "status"])
    p.add_argument("model", nargs="?", help="the model's name (capture: required)")
    p.add_argument("version", nargs="?", help="capture: the version whose reference it is")
    p.add_argument(
        "--models",
        metavar="DIR",
        help="capture: the model repository to write into (default: the one this runtime's "
        "sidecars serve, <runtime>/repository, whose version folders link to yours)",
    )
    p.add_argument(
        "--prometheus",
        metavar="URL",
        help="capture: the fleet's counts from this Prometheus over --window instead of this "
        "machine's edge since its sidecars started",
    )
    p.add_argument("--window", default="1h", help="capture --prometheus: e.g. 30m, 6h (1h)")
    p.add_argument(
        "--min-rows",
        type=int,
        default=MIN_ROWS,
        help=f"capture: refuse a reference of fewer rows ({MIN_ROWS}): a small one makes "
        "drift noisy",
    )
    return p


def _fail(text: str, code: int = 1) -> int:
    print(f"weir drift: {text}", file=sys.stderr)
    return code


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ValueError(f"--window {text!r}: give a number and s, m, h or d (e.g. 1h)")
    return float(text[:-1]) * units[text[-1]]


def capture(runtime: RuntimeDir, args: argparse.Namespace) -> int:
    model, version = args.model, args.version
    if not model or not version:
        return _fail("capture needs MODEL and VERSION (e.g. weir drift capture digits 2)", 2)
    models = Path(args.models) if args.models else runtime.root / "repository"
    folder = models / model / version
    if not (folder / "model.onnx").is_file():
        return _fail(f"{folder} holds no model.onnx: give the repository with --models DIR", 2)
    if args.prometheus:
        seconds = _seconds(args.window)
        signals = PrometheusSignals(args.prometheus).window(model, seconds)
        source = f"the fleet's answers over {args.window} (Prometheus {args.prometheus})"
    else:
        client = AdminClient.for_runtime(runtime)
        signals = LocalSignals(runtime).read(client, model)
        source = f"answers through the edge at {client.address} since its sidecars started"
    found = signals.get(version, Signals())
    rows = rows_of(found)
    if rows < args.min_rows:
        return _fail(
            f"{model} version {version} answered {rows:.0f} rows ({source}); a reference needs "
            f"at least {args.min_rows}: send it more traffic first (or lower --min-rows)",
        )
    path = write_from_signals(folder, model, version, found, source)
    print(
        f"wrote {path}: {rows:.0f} rows of {model} version {version} ({source}). Its sidecars "
        f"measure drift against it from their next scrape (weir_prediction_drift)."
    )
    return 0


def status(runtime: RuntimeDir, model: str | None) -> int:
    client = AdminClient.for_runtime(runtime)
    local = LocalSignals(runtime)
    lines = []
    for sidecar in local.sidecars():
        code, body = client.request("GET", f"/metrics/sidecars/{sidecar}")
        if code != 200 or not isinstance(body, str):
            lines.append(f"sidecar {sidecar}: the edge answered {code} for its metrics")
            continue
        found: dict[tuple[str, str, str], dict[str, float]] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                if not sample.name.startswith("weir_prediction_drift"):
                    continue
                labels = sample.labels
                if model and labels.get("model") != model:
                    continue
                key = (labels["model"], labels["version"], labels["signal"])
                found.setdefault(key, {})[sample.name] = sample.value
        for (m, v, signal), values in sorted(found.items()):
            psi = values.get("weir_prediction_drift")
            rows = values.get("weir_prediction_drift_rows", 0)
            lines.append(
                f"{m} v{v} {signal}: PSI {psi:.3f} over the last {rows:.0f} rows "
                f"(sidecar {sidecar})"
            )
    if not lines:
        lines.append(
            f"no drift reported{f' for {model}' if model else ''}: a version needs a "
            f"{REFERENCE_FILE} in its folder (weir drift capture MODEL VERSION) and traffic"
        )
    print("\n".join(lines))
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    runtime = RuntimeDir.from_arg(args.runtime_dir)
    try:
        if args.action == "capture":
            return capture(runtime, args)
        return status(runtime, args.model)
    except (AdminError, SignalsError, OSError, ValueError) as exc:
        return _fail(str(exc))


__all__ = ["main", "parser"]
