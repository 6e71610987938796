"""The control plane's layers, checked: no module imports from a layer above its own, and no
module grows past ~300 lines without saying why in its opening comment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
# Bottom to top. A package's modules may import their own package and anything below.
LAYERS = [
    {"args", "release", "runtime"},
    {"edge", "fleet", "k8s", "observability", "quantize"},
    {"deploy"},
    {"stack", "rollout"},
    {"drift"},
    {"cli"},
]
MODULES = sorted(p for p in SCRIPTS.rglob("*.py") if p.name != "__init__.py")


def layer(name: str) -> int:
    (index,) = [i for i, names in enumerate(LAYERS) if name in names]
    return index


def top_name(path: Path) -> str:
    return path.relative_to(SCRIPTS).parts[0].removesuffix(".py")


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "scripts" and len(parts) > 1:
                names.add(parts[1])
            elif node.module == "scripts":
                names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "scripts" and len(parts) > 1:
                    names.add(parts[1])
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_module_imports_from_a_layer_above(path: Path) -> None:
    own = layer(top_name(path))
    above = sorted(name for name in imported(path) if layer(name) > own)
    assert not above, f"{path.relative_to(SCRIPTS)} (layer {own}) imports {above} from above"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SCRIPTS)))
def test_no_module_is_two_concerns_in_one_file(path: Path) -> None:
    lines = path.read_text().count("\n")
    opening = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert lines <= 300 or "lines" in opening, f"{lines} lines and no reason given"


ERRORS_HOME = "scripts.edge.errors"


def test_deploy_errors_have_one_home() -> None:
    """DeployError and LiveChangeError are imported from scripts.edge.errors only, everywhere
    (scripts, tests, bench): no package re-exports them."""
    root = SCRIPTS.parent
    elsewhere = []
    for path in sorted([*SCRIPTS.rglob("*.py"), *(root / "tests").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module != ERRORS_HOME:
                names = {alias.name for alias in node.names}
                if names & {"DeployError", "LiveChangeError"}:
                    elsewhere.append(f"{path.relative_to(root)}: from {node.module}")
    assert elsewhere == []
    import scripts.deploy

    assert not hasattr(scripts.deploy, "DeployError")
