"""Who signs registro's images: the identity and provenance type deploy/image/verify.py requires
before a release and deploy/k8s/platform/policies/image-policy.yaml requires at admission (stdlib
only: the Kubernetes tests import it without cryptography)."""

from __future__ import annotations

from dataclasses import dataclass

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
RELEASE_WORKFLOW = ".github/workflows/deploy.yml"
RELEASE_REF = "refs/heads/main"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"


@dataclass(frozen=True)
class Expected:
    """Who must have signed: our repository's release workflow, on main, at this commit."""

    repository: str  # OWNER/NAME on GitHub
    commit: str
    workflow: str = RELEASE_WORKFLOW
    ref: str = RELEASE_REF
    issuer: str = GITHUB_ISSUER

    @property
    def repository_uri(self) -> str:
        return f"https://github.com/{self.repository}"

    @property
    def identity(self) -> str:
        """The certificate's SAN: the workflow's job_workflow_ref as a URI (cosign's
        --certificate-identity for GitHub Actions)."""
        return f"{self.repository_uri}/{self.workflow}@{self.ref}"
