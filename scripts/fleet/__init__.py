"""The fleet: the local sidecars as the control plane sees them (the server is `sidecar/`):
the release's sidecar pools as processes and their names (`pools.py`), the release's view of
the model repository per pool (`model_view.py`), loading a release's versions in `weir up`'s
running sidecars before the edge routes to them (`sync.py`), the body limit a release gives
them (`limits.py`), and asking a sidecar's health (`probe.py`).
Above `release` and `runtime`; below `deploy`."""
