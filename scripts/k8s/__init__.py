"""`weir k8s FILE`: Kubernetes manifests from a release (`manifests.py`)."""
