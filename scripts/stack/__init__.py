"""Weir's processes in the foreground: `weir edge` (`edge.py`) and `weir up` (`up.py`: sidecars
per pool and device and the edge, supervised by `supervisor.py`, each pool's CPU set and memory
limit applied by `isolation.py`). The top layer below `cli.py`."""
