"""`weir quantize MODEL VERSION --to NEW`: an INT8 (or FP16) copy of a version, with a report.

The new version is an ordinary one: the same inputs and outputs (FP32 in, FP32 out), in its
own folder, so the release can grey-release it beside its source and roll it back.
Exit codes: 0 written; 2 the command line or its data is wrong (unknown model or version,
NEW already there, unusable calibration file); 1 the quantization failed or was refused (the
loss exceeds the tolerance), and nothing was written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scripts.release.values import NAME_RE, VERSION_RE

EXIT_REFUSED = 1
EXIT_USAGE = 2
DEFAULT_TOLERANCE = 0.01
DEFAULT_BENCH_SECONDS = 30.0


class UsageError(ValueError):
    """Wrong input: the message says what was wrong and what to do."""


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weir quantize",
        description="Write an INT8 (or FP16) copy of a model version as a new version, with a "
        "report of its size, speed and accuracy against the source. Refuses to write it when "
        "the accuracy loss exceeds the tolerance. Exit codes: 0 written; 2 the input is wrong; "
        "1 the quantization failed or was refused (nothing written).",
    )
    parser.add_argument("model", help="model name (a folder of the repository)")
    parser.add_argument("version", help="the source version, e.g. 2")
    parser.add_argument("--to", required=True, dest="new", help="the new version; must not exist")
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path(os.environ.get("WEIR_MODELS_DIR", "models")),
        help="model repository (default: $WEIR_MODELS_DIR, as for weir up, else ./models)",
    )
    parser.add_argument(
        "--precision",
        choices=("int8", "fp16"),
        default="int8",
        help="int8 for CPUs (default); fp16 for GPU deployments (inputs and outputs stay FP32)",
    )
    parser.add_argument(
        "--mode",
        choices=("static", "dynamic"),
        default="static",
        help="static: activation ranges fitted on calibration rows (default, fastest); dynamic: "
        "weights only, activation ranges computed at run time",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="FILE.npz: one array per model input, named after it, optional `labels` (class "
        "indices); first 75%% of rows calibrate, the rest judge. Default for digits and cnn: "
        "their own held-out data",
    )
    parser.add_argument(
        "--format",
        choices=("qdq", "qoperator"),
        default="qdq",
        help="static mode's graph format (default qdq: QuantizeLinear/DequantizeLinear pairs)",
    )
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one scale per output channel of each weight (default: on when the model has "
        "convolutions)",
    )
    parser.add_argument(
        "--reduce-range",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="7-bit weights (default: on for x86 CPUs without VNNI or AMX, read from "
        "/proc/cpuinfo)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest accuracy loss accepted, as a fraction (default 0.01: 1%% relative; "
        "without labels: the share of rows whose top class changed)",
    )
    parser.add_argument(
        "--accept-loss",
        action="store_true",
        help="write the version even when the loss exceeds the tolerance (the report says so)",
    )
    parser.add_argument(
        "--bench-seconds",
        type=float,
        default=DEFAULT_BENCH_SECONDS,
        help="upper bound on the side-by-side timing (default 30)",
    )
    return parser


def check_arguments(args: argparse.Namespace) -> tuple[Path, Path]:
    """The source model file and the new version's folder, or a UsageError."""
    if not NAME_RE.match(args.model):
        raise UsageError(
            f"{args.model!r} is not a model name (lower-case letters, digits, '_' and '-')"
        )
    for flag, value in (("VERSION", args.version), ("--to", args.new)):
        if not VERSION_RE.match(value):
            raise UsageError(f"{flag} {value!r} is not a version: use a positive integer")
    if args.version == args.new:
        raise UsageError(f"--to {args.new} is the source version: choose a new number")
    if not 0 <= args.tolerance < 1:
        raise UsageError(f"--tolerance {args.tolerance} must be a fraction in [0, 1), e.g. 0.01")
    if args.bench_seconds <= 0:
        raise UsageError("--bench-seconds must be positive")
    model_dir = args.repository / args.model
    if not model_dir.is_dir():
        known = sorted(p.name for p in args.repository.glob("*/") if p.is_dir())
        where = ", ".join(known) if known else "none"
        raise UsageError(
            f"no model '{args.model}' in the repository {args.repository} (models there: "
            f"{where}); pass --repository DIR if it lives elsewhere"
        )
    source = model_dir / args.version / "model.onnx"
    if not source.is_file():
        found = (p.name for p in model_dir.iterdir() if (p / "model.onnx").is_file())
        versions = sorted((name for name in found if name.isdigit()), key=int)
        raise UsageError(
            f"model '{args.model}' has no version {args.version} ({source} is missing); "
            f"versions there: {', '.join(versions) or 'none'}"
        )
    target = model_dir / args.new
    if target.exists():
        raise UsageError(
            f"{target} already exists: weir quantize never overwrites a version (a sidecar may "
            "serve it). Choose another --to, or remove that folder first if it is not served"
        )
    return source, target


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    from scripts.quantize.data import DataError
    from scripts.quantize.run import quantize

    try:
        source, target = check_arguments(args)
        report = quantize(args, source, target)
    except (UsageError, DataError) as exc:
        print(f"weir quantize: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # ONNX Runtime's, or the file system's; nothing was written
        print(
            f"weir quantize: {args.model} v{args.version} could not be converted "
            f"({type(exc).__name__}: {exc}); nothing was written",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    if not report.verdict.write:
        print(f"weir quantize: {report.verdict.reason}", file=sys.stderr)
        return EXIT_REFUSED
    return 0
