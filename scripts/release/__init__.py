"""The release file: its schema (`schema.py`; the machine-wide sections in `sections.py`, value
types in `values.py`) and loading it with
errors that point at the line (`loading.py`). The bottom layer: it imports no other Weir
package but the sidecar's batching model."""

from scripts.release.loading import LoadedRelease, load_release, parse_release
from scripts.release.schema import Model, Release, ReleaseError

__all__ = ["LoadedRelease", "Model", "Release", "ReleaseError", "load_release", "parse_release"]
