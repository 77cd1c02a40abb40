"""The programs release.sh, make verify-k8s, make smoke and make helm run."""
