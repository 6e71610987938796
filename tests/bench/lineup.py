"""Who is measured: the servers of the throughput section and the isolation layouts, from the
command line's options (`tests.bench.run`)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from tests.bench import isolation
from tests.bench.servers import Target, bare_target, flask_target, host_target, weir_target

ROOT = Path(__file__).resolve().parents[2]


def select(names: list[str], only: list[str]) -> list[str]:
    """`names` holding one of the words of `only` that concern them (all when none do)."""
    words = [w for w in only if any(w in n for n in names)]
    return [n for n in names if not words or any(w in n for w in words)]


def stack_targets(args: argparse.Namespace, logs: Path) -> list[Target]:
    """Weir's worker stack on the whole repository: every sidecar configuration asked for (the
    default one started with no flags, as `weir up` runs it), then every bench host."""
    targets: list[Target] = []
    has_sidecar = (ROOT / "sidecar" / "server" / "launcher.py").exists()
    if not args.no_sidecar and not has_sidecar:
        print(
            "bench: sidecar/server/launcher.py not found, measuring baselines only",
            file=sys.stderr,
        )
    if not has_sidecar or args.no_sidecar:
        return targets
    for config in args.worker_classes.split(","):
        cls, _, count = config.partition(":")
        workers = int(count or args.workers)
        default = (cls, workers) == (args.default_class, args.default_workers)
        label = f"weir {cls} w{workers}" + (" (default)" if default else "")
        # The default configuration is started with no flags at all: what `weir up` runs.
        flags = (None, None) if default else (workers, cls)
        target = weir_target(args.models, logs, *flags, label, default)
        targets.append(replace(target, workers=workers))
    for host in (h for h in args.hosts.split(",") if h):
        label = f"{host}+weir w{args.workers}"
        targets.append(host_target(host, args.models, logs, args.workers, label))
    return targets


def targets(args: argparse.Namespace, logs: Path, only: list[str]) -> list[Target]:
    targets = [
        flask_target(args.models, logs),
        bare_target(
            args.models, logs, args.workers, args.threads, args.bare_spinning, args.bare_json
        ),
        *stack_targets(args, logs),
    ]
    names = select([t.name for t in targets], only)
    return [t for t in targets if t.name in names]


def layouts(
    args: argparse.Namespace, targets: list[Target], workdir: Path
) -> list[isolation.Layout]:
    """Same pool: the servers section's own Weir-stack targets (the default sidecar always
    among them); separate pools: two one-CPU pools of each kind, started here."""
    same = [t for t in targets if t.role == "weir"]
    if not any(t.default for t in same):
        default = next((t for t in stack_targets(args, workdir) if t.default), None)
        same = ([default] if default else []) + same
    cpus = sorted(os.sched_getaffinity(0))
    layouts = []
    for target in same:
        server = target.name.split(" (")[0]
        layouts.append(isolation.Layout(server, target.default, isolation.SAME, target, target))
        if len(cpus) >= 2:
            layouts.append(
                isolation.separate_pools(
                    target.kind, server, target.default, args.models, workdir, cpus[:2]
                )
            )
        else:
            print("bench: one CPU here, no separate-pools layout", file=sys.stderr)
    return layouts
