"""One quantization, start to end: convert into a staging folder, measure both versions on
the same rows, decide, then publish the folder whole or discard it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import onnx

from scripts.quantize import cpu, data, sessions, timing
from scripts.quantize.accuracy import compare, decide
from scripts.quantize.convert import Format, Options, convert, has_convolutions
from scripts.quantize.publish import MODEL_FILE, REPORT_FILE, discard, publish, stage
from scripts.quantize.report import Report, format_table


def choose_options(args: argparse.Namespace, source: Path, features: cpu.CpuFeatures) -> Options:
    """The command line's choices, with the defaults the model and the CPU decide."""
    per_channel = args.per_channel
    if per_channel is None:
        per_channel = has_convolutions(onnx.load(source, load_external_data=False))
    reduce_range = features.reduce_range if args.reduce_range is None else args.reduce_range
    # ONNX Runtime's dynamic quantization has QOperator kernels only (MatMulInteger, ...).
    quant_format: Format = "qoperator" if args.mode == "dynamic" else args.format
    return Options(args.precision, args.mode, quant_format, per_channel, reduce_range)


def _range_note(options: Options, features: cpu.CpuFeatures) -> str | None:
    if options.precision != "int8" or options.reduce_range == features.reduce_range:
        if options.precision == "int8" and not options.reduce_range and features.x86:
            return "8-bit weights: this CPU's int8 kernels accumulate in int32 (VNNI/AMX)"
        return None
    if options.reduce_range:
        return "7-bit weights as asked (--reduce-range), though this CPU does not need them"
    return (
        "8-bit weights as asked (--no-reduce-range) on an x86 CPU without VNNI: its int16 "
        "accumulations may saturate; compare the accuracy with the default"
    )


def _notes(source: Path, options: Options, features: cpu.CpuFeatures) -> tuple[str, ...]:
    notes = []
    others = sorted(p.name for p in source.parent.iterdir() if p.name != MODEL_FILE)
    if others:
        notes.append(
            f"not copied from v{source.parent.name}: {', '.join(others)} (a version folder "
            "holds its model.onnx; config.yaml and hooks live in the model's folder and apply "
            "to every version)"
        )
    range_note = _range_note(options, features)
    if range_note:
        notes.append(range_note)
    return tuple(notes)


def quantize(args: argparse.Namespace, source: Path, target: Path) -> Report:
    """Quantize, report (printed, and saved beside the new model when it is written)."""
    import onnxruntime as ort

    features = cpu.detect()
    options = choose_options(args, source, features)
    original = sessions.open_session(source)
    rows = data.for_model(args.model, sessions.input_names(original), args.calibration)
    try:
        reference = sessions.first_output(original, rows.evaluation)
    except Exception as exc:  # the data does not fit the model's inputs
        raise data.DataError(f"v{args.version} cannot run on {rows.source}: {exc}") from None
    print(
        f"weir quantize: converting {args.model} v{args.version} ({options.precision}) ...",
        file=sys.stderr,
    )
    staging = stage(target.parent, args.new)
    try:
        model_path = staging / MODEL_FILE
        convert(source, model_path, options, rows.calibration)
        converted = sessions.open_session(model_path)
        accuracy = compare(
            reference, sessions.first_output(converted, rows.evaluation), rows.labels
        )
        verdict = decide(accuracy, args.tolerance, args.accept_loss)
        speed = None
        if options.precision == "int8":
            print("weir quantize: timing both versions side by side ...", file=sys.stderr)
            speed = timing.side_by_side(
                (original, converted), rows.evaluation, budget_s=args.bench_seconds
            )
        report = Report(
            model=args.model,
            source_version=args.version,
            new_version=args.new,
            source_bytes=source.stat().st_size,
            new_bytes=model_path.stat().st_size,
            accuracy=accuracy,
            verdict=verdict,
            tolerance=args.tolerance,
            speed=speed,
            options=options.as_dict(),
            cpu=features.as_dict(),
            onnxruntime=ort.__version__,
            data_source=rows.source,
            notes=_notes(source, options, features),
        )
        print(format_table(report))
        if not verdict.write:
            discard(staging)
            return report
        (staging / REPORT_FILE).write_text(report.to_json())
        publish(staging, target)
    except BaseException:
        discard(staging)
        raise
    split = f'{{"{args.version}": 95, "{args.new}": 5}}'
    print(
        f"\nwrote {target}/{MODEL_FILE} and {REPORT_FILE}. To grey-release it, add version "
        f'"{args.new}" to the model in the release with `release: {{split: {split}}}` and run '
        "`weir apply FILE` (a sidecar serving this repository directly loads it on its next "
        "rescan)."
    )
    return report
