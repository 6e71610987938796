"""Reading a release file: YAML in, a validated `Release` out, or errors that name the file,
the line, the key path, the bad value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scripts.release.schema import Model, Release, ReleaseError, Version


@dataclass(frozen=True)
class LoadedRelease:
    release: Release
    path: Path
    text: str


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The YAML node a pydantic error location points at (or the deepest one that exists)."""
    node = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            found = None
            for key_node, value_node in node.value:
                if str(key_node.value) == str(key):
                    found = value_node
                    break
            if found is None:
                # An unknown key: point at the key itself.
                for key_node, _ in node.value:
                    if str(key_node.value) == str(key):
                        return key_node
                return node
            node = found
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return node
    return node


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: Any = Release
    for key in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields and key in fields:
            annotation = fields[key].annotation
            model = _model_in(annotation)
        elif model is Model and key in ("versions",):
            model = Version
        else:
            model = _model_in(model) if model is not None else None
    fields = getattr(model, "model_fields", None)
    return ", ".join(fields) if fields else ""


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _is_pydantic_tag(part: Any) -> bool:
    """Union-member and validator tags pydantic puts into error locations."""
    text = str(part)
    return text.startswith(("function-", "union", "literal[", "list[")) or text in ("str", "int")


def _format_errors(path: Path, root: yaml.Node | None, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if not _is_pydantic_tag(p))
        node = _node_at(root, loc)
        line = node.start_mark.line + 1 if node is not None else 1
        key_path = ".".join(str(p) for p in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc)
            message = f"unknown key {loc[-1]!r}" + (f"; allowed keys: {allowed}" if allowed else "")
        elif item["type"] == "missing":
            message = "required key is missing"
        else:
            bad = item.get("input")
            if not isinstance(bad, dict | list) and bad is not None:
                message = f"{bad!r}: {message}"
        lines.append(f"{path}:{line}: {key_path}: {message}")
    return "\n".join(dict.fromkeys(lines))


def parse_release(text: str, path: Path | str = "release.yaml") -> Release:
    """Parse and validate a release; raise ReleaseError with every problem, one per line."""
    path = Path(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ReleaseError(f"{path}:{line}: {problem} (fix the YAML syntax)") from None
    if not isinstance(data, dict):
        raise ReleaseError(f"{path}:1: a release is a mapping: revision, edge, sidecars, models")
    try:
        return Release.model_validate(data)
    except ValidationError as exc:
        raise ReleaseError(_format_errors(path, root, exc)) from None


def load_release(path: Path | str) -> LoadedRelease:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read the release file ({exc.strerror})") from None
    return LoadedRelease(release=parse_release(text, path), path=path, text=text)
