"""Kubernetes delivery (release.sh and its tools)."""
