"""Weir's control plane (`weir`, `cli.py`), in layers; a module imports only from its own layer
or below (tests/unit/test_layers.py checks it):

0  release/ (the release file), runtime/ (the runtime directory), args.py (the CLI convention)
1  edge/ (render, the Lua settings contract, nginx, revisions, reload and verify, admin API),
   fleet/ (the local sidecars as the control plane sees them: the models' view, loading a
   release in `weir up`'s sidecars, their limits, probe; the server itself is sidecar/), k8s/,
   observability/
2  deploy/ (the one pipeline: apply, rollback, an edge's start and every restart; history)
3  stack/ (`weir edge`, `weir up` and its supervisor)
4  cli.py
"""
