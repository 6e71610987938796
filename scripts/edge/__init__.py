"""The edge's Python half: render (nginx.conf and the Lua settings), the Lua settings contract
(lua_settings), and the names nginx.conf shares with the Lua modules (names).

This package shadows the module scripts/edge.py (`weir edge`, the `Edge` process class), which
the control-plane redesign moves into this package. Until then, its names are loaded from that
file on first use, so `from scripts.edge import Edge` and `scripts.edge:main` keep working; the
merge replaces `__getattr__` below with the moved module's imports.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

_PROCESS_FILE = Path(__file__).resolve().parent.parent / "edge.py"
_PROCESS_MODULE = "scripts._edge_process"
_PROCESS_NAMES = frozenset({"Edge", "main"})  # what the repo imports from scripts/edge.py


def _process() -> ModuleType:
    module = sys.modules.get(_PROCESS_MODULE)
    if module is None:
        spec = importlib.util.spec_from_file_location(_PROCESS_MODULE, _PROCESS_FILE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[_PROCESS_MODULE] = module
        spec.loader.exec_module(module)
    return module


def __getattr__(name: str) -> Any:
    if name not in _PROCESS_NAMES:
        raise AttributeError(f"module 'scripts.edge' has no attribute {name!r}")
    return getattr(_process(), name)
