"""Reading a release file: YAML in, a validated `Release` out, or errors that name the file,
the line, the key path, the bad value and what is allowed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scripts.release.schema import Model, Release, ReleaseError, Version

# A release is a few KB; bounds on what a hostile or mistaken file can cost to read and report.
MAX_BYTES = 256 * 1024
MAX_DEPTH = 24
MAX_ERRORS = 20


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


# What strict validation says, in the words of the file's author.
TYPE_HINTS = {
    "int_type": "expected a whole number, without quotes (true/false and '50' are not numbers)",
    "float_type": "expected a number, without quotes",
    "bool_type": "expected true or false",
    "string_type": "expected text: put it in quotes",
    "model_type": "expected a mapping: {key: value, ...}",
    "model_attributes_type": "expected a mapping: {key: value, ...}",
    "dict_type": "expected a mapping: {key: value, ...}",
    "list_type": "expected a list: [a, b]",
}


def _format_errors(path: Path, root: yaml.Node | None, error: ValidationError) -> str:
    lines = []
    errors = error.errors()
    for item in errors[:MAX_ERRORS]:
        loc = tuple(p for p in item["loc"] if not _is_pydantic_tag(p))
        if item["type"] == "extra_forbidden" and item["loc"] and loc[-1:] != item["loc"][-1:]:
            loc = (*loc, item["loc"][-1])  # the unknown key itself, whatever it is called
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
            message = TYPE_HINTS.get(item["type"], message)
            bad = item.get("input")
            if not isinstance(bad, dict | list) and bad is not None:
                shown = repr(bad)
                message = f"{shown if len(shown) <= 60 else shown[:57] + '...'}: {message}"
        lines.append(f"{path}:{line}: {key_path}: {message}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"{path}: ... and {len(errors) - MAX_ERRORS} more problems: fix these first")
    return "\n".join(dict.fromkeys(lines))


ANCHORS_REFUSED = (
    "YAML anchors and aliases (&name, *name, << merges) are not allowed in a release: write "
    "each value out where it applies (a reviewed file should say what it means where it says "
    "it, and an alias can expand without bound)"
)


class _Refused(Exception):
    def __init__(self, mark: yaml.Mark | None, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else 1
        self.message = message


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases, nesting beyond MAX_DEPTH (as it reaches it:
    the composer recurses, so 5,000 levels would end in a RecursionError) and keeps timestamps
    as the text they are (PyYAML raises a bare ValueError for a date like 2024-13-01)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _Refused(event.start_mark, ANCHORS_REFUSED)
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Refused(
                    event.start_mark,
                    f"nested deeper than {MAX_DEPTH} levels: a release is a few levels deep "
                    "(models.NAME.versions.V.batching); flatten this value",
                )
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self.depth -= 1


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _check_keys(node: yaml.Node | None) -> None:
    """Every mapping key once (a second `digits:` would silently replace the first; `1` and
    `"1"` name the same version), and no `<<` merges."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_keys(item)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(key_node.start_mark, ANCHORS_REFUSED)
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Refused(key_node.start_mark, "a key is a plain name or number, not a list")
            first = seen.setdefault(str(key_node.value), key_node)
            if first is not key_node:
                raise _Refused(
                    key_node.start_mark,
                    f"key {key_node.value!r} is given twice (first on line "
                    f"{first.start_mark.line + 1}): keep one of them",
                )
            _check_keys(value_node)


def _yaml_error(path: Path, text: str, exc: yaml.YAMLError) -> ReleaseError:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1
    else:
        line = 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "not valid YAML"
    if isinstance(exc, yaml.reader.ReaderError):
        problem = f"character {chr(exc.character)!r} is not allowed in YAML"  # type: ignore[arg-type]
    return ReleaseError(f"{path}:{line}: {problem} (fix the YAML syntax)")


def _decode(data: bytes, path: Path) -> str:
    if len(data) > MAX_BYTES:
        raise ReleaseError(
            f"{path}: the file is {len(data)} bytes, over the {MAX_BYTES // 1024} KiB a release "
            "may be: is this the release file? (fallback bodies are placeholders, not data)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ReleaseError(
            f"{path}:{line}: byte 0x{data[exc.start]:02x} is not UTF-8: save the file as UTF-8"
        ) from None


def read_yaml(text: str | bytes, path: Path) -> tuple[yaml.Node | None, Any]:
    """The YAML document of a release: its node tree (for line numbers) and its data, or a
    ReleaseError naming the line. Size is checked before anything is parsed."""
    if isinstance(text, bytes):
        text = _decode(text, path)
    elif len(text) > MAX_BYTES:
        _decode(text.encode("utf-8", "replace"), path)
    loader = None
    try:
        loader = _StrictLoader(text)
        root = loader.get_single_node()
        _check_keys(root)
        data = None if root is None else loader.construct_document(root)
    except _Refused as exc:
        raise ReleaseError(f"{path}:{exc.line}: {exc.message}") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(path, text, exc) from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer of 5,000 digits
        raise ReleaseError(f"{path}: a value YAML cannot read ({str(exc)[:120]}): fix it") from None
    finally:
        if loader is not None:
            loader.dispose()
    return root, data


def parse_release(text: str | bytes, path: Path | str = "release.yaml") -> Release:
    """Parse and validate a release; raise ReleaseError with every problem, one per line."""
    path = Path(path)
    root, data = read_yaml(text, path)
    if not isinstance(data, dict):
        raise ReleaseError(f"{path}:1: a release is a mapping: revision, edge, sidecars, models")
    try:
        # Strict: `revision: true` is not 1, `"50"` is not 50, a string stays a string.
        return Release.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ReleaseError(_format_errors(path, root, exc)) from None


def load_release(path: Path | str) -> LoadedRelease:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)  # no more than the limit is ever read
    except OSError as exc:
        raise ReleaseError(f"{path}: cannot read the release file ({exc.strerror})") from None
    text = _decode(data, path)
    return LoadedRelease(release=parse_release(text, path), path=path, text=text)
