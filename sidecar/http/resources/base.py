"""What the per-model resources share: the data plane they translate to."""

from __future__ import annotations

from sidecar.serving.dataplane import DataPlane


class ModelResource:
    """A resource under `/v2/models/{model}[/versions/{version}]`."""

    def __init__(self, dataplane: DataPlane) -> None:
        self.dataplane = dataplane
