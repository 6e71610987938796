"""Moved to `scripts/sidecars/model_view.py`. Kept only so that tests/unit/sidecar (being
restructured in parallel) still imports it; delete it when that work lands."""

from scripts.sidecars.model_view import build_view, merged_config, point, publish_view

__all__ = ["build_view", "merged_config", "point", "publish_view"]
