"""Falcon resources: thin translators from HTTP to the data plane and back."""
