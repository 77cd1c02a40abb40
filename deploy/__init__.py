"""registro's operations, run from the repository root: python -m deploy.aws.preflight qa."""
