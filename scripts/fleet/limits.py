"""What a release tells every sidecar besides its models: the largest body to accept.

One rule for `weir up` and for Kubernetes manifests: a sidecar accepts at least the edge's
`edge.max_body` (a body the edge lets through and the sidecar cuts off is a broken pipe, a 503
that counts against the breaker), or more when its own WEIR_MAX_BODY_BYTES says so. The body
the edge forwards is the client's, binary tensor header included, so equal is enough.
"""

from __future__ import annotations

from scripts.release import Release
from sidecar.settings import Settings

MAX_BODY_FLAG = "--max-body-bytes"  # `weir sidecar`'s flag; WEIR_MAX_BODY_BYTES in its env


def sidecar_max_body(release: Release, settings: Settings | None = None) -> int:
    """Bytes: the release's max_body, or the sidecar's own setting when larger."""
    own = (settings or Settings.from_env({})).max_body_bytes
    return max(release.edge.max_body, own)


def sidecar_args(release: Release, settings: Settings | None = None) -> list[str]:
    """The `weir sidecar` arguments that carry the body limit."""
    return [MAX_BODY_FLAG, str(sidecar_max_body(release, settings))]
