"""The sidecar's layers: codec < serving < http < server; no module imports from above.

`errors`, `metrics` and `metric_slots` sit below everything. `settings` belongs with the server
layer (only it reads settings; serving gets explicit values) and takes its batching defaults
from `serving.model_config`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sidecar

ROOT = Path(sidecar.__file__).parent
RANK = {
    "errors": 0,
    "metrics": 0,
    "metric_slots": 0,
    "codec": 1,
    "serving": 2,
    "http": 3,
    "server": 4,
    "settings": 4,
}


def _layer(module: str) -> str:
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("sidecar."))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sidecar."))
    return {name for name in found if _layer(name) in RANK}


MODULES = sorted(p for p in ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_from_a_layer_above_its_own(path: Path):
    module = ".".join(("sidecar", *path.relative_to(ROOT).with_suffix("").parts))
    if module.endswith(".__init__") or module == "sidecar.__init__":
        module = module.removesuffix(".__init__")
    if module == "sidecar":
        return
    own = RANK[_layer(module)]
    above = sorted(name for name in _imports(path) if RANK[_layer(name)] > own)
    assert not above, f"{module} (layer {own}) imports from above: {above}"


def test_every_module_belongs_to_a_layer():
    top = {p.stem if p.is_file() else p.name for p in ROOT.iterdir() if p.suffix in ("", ".py")}
    top -= {"__init__", "__pycache__", "README"}
    assert top <= set(RANK), f"modules outside the layers: {sorted(top - set(RANK))}"
