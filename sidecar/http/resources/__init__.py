"""Falcon resources: thin HTTP adapters over the repository and the batchers."""
