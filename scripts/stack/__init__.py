"""Weir's processes in the foreground: `weir edge` (`edge.py`) and `weir up` (`up.py`: sidecars
per device and the edge, supervised by `supervisor.py`). The top layer below `cli.py`."""
