"""Where a server's time goes under load: py-spy samples a sidecar worker while wrk loads it.

    .venv/bin/pip install py-spy        # not a project dependency: only this tool needs it
    .venv/bin/python -m tests.bench.profile --payload digits/v2/json --clients 64
    .venv/bin/python -m tests.bench.profile --server bare --payload cnn/v1/binary

Prints the functions holding the most samples (self and inclusive) and keeps the collapsed
stacks (flame-graph input) in the file it names.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from tests.bench.loadgen import LoadResult, payload_script, run_wrk
from tests.bench.payloads import check, make_payload
from tests.bench.procs import running
from tests.bench.servers import Target, bare_target, weir_target

ROOT = Path(__file__).resolve().parents[2]
_LINE = re.compile(r":\d+\)$")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.bench.profile", description=__doc__.split("\n")[0]
    )
    p.add_argument("--server", choices=["weir", "bare"], default="weir")
    p.add_argument("--worker-class", default="meinheld", help="weir only")
    p.add_argument("--workers", type=int, default=1, help="the first one is sampled")
    p.add_argument("--payload", default="digits/v2/json", help="MODEL/vVERSION/json|binary")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include C frames (slower sampling)")
    p.add_argument("--models", type=Path, default=ROOT / "models")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--output", type=Path, help="collapsed stacks (default: a temporary file)")
    return p.parse_args(argv)


def _summary(collapsed: str, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        # One entry per function, not per line: "f (path.py:47)" -> "f (path.py)".
        frames = [_LINE.sub(")", f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"{total} samples", "", "self %   function"]
    lines += [f"{100 * n / total:6.1f}   {f}" for f, n in own.most_common(top)]
    lines += ["", "incl %   function"]
    lines += [f"{100 * n / total:6.1f}   {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("profile: py-spy not found: `.venv/bin/pip install py-spy`", file=sys.stderr)
        return 2
    model, version, encoding = args.payload.split("/")
    payload = make_payload(args.models, model, version.lstrip("v"), encoding)
    workdir = Path(tempfile.mkdtemp(prefix="weir-profile-"))
    output = args.output or workdir / "stacks.txt"
    target: Target
    cpus = len(os.sched_getaffinity(0))
    if args.server == "bare":
        target = bare_target(args.models, workdir, args.workers, max(1, cpus // args.workers))
    else:
        label = f"weir {args.worker_class} w{args.workers}"
        target = weir_target(args.models, workdir, args.workers, args.worker_class, label)
    with running([target.server]):
        check(target.base_url, payload)
        master, *workers = target.server.pids()
        worker = workers[0] if workers else master  # one of gunicorn's workers
        script = payload_script(payload, workdir)
        url = target.base_url + payload.path
        run_wrk(url, script, args.clients, 1)
        result: list[LoadResult] = []
        load = threading.Thread(
            target=lambda: result.append(run_wrk(url, script, args.clients, args.seconds + 2))
        )
        load.start()
        spy = [py_spy, "record", "--pid", str(worker), "--duration", str(args.seconds)]
        spy += [
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--output",
            str(output),
            "--nonblocking",
        ]
        if args.native:
            spy.append("--native")
        subprocess.run(spy, check=True, capture_output=True)
        load.join()
    print(
        f"{target.name}, {args.payload}, {args.clients} clients: {result[0].rps:,.0f} req/s "
        f"while sampled (py-spy costs some)"
    )
    print(_summary(output.read_text(), args.top))
    print(f"\ncollapsed stacks: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
