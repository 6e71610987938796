"""The server: `weir sidecar` (launcher), gunicorn's configuration, Weir's worker classes and
meinheld's batching driver. The top layer (codec < serving < http < server): the only one that
reads `sidecar.settings`, knows which HTTP server runs, and wires the layers below together.
"""
