"""The audit's client address on EKS: X-Forwarded-For is believed from the ALB only.

Behaviours relied on:
- The ALB's `routing.http.xff_header_processing.mode` defaults to `append`: it adds the address
  of the client it received the connection from as the last X-Forwarded-For entry, after what the
  client sent (https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html).
- With `target-type: ip` the pod's peer is the ALB node itself, which has its addresses in the
  subnets the internet-facing ALB is placed in: the public subnets.
- uvicorn's ProxyHeadersMiddleware (forwarded_allow_ips, CIDRs accepted) takes the rightmost
  entry that is not a trusted proxy, and the leftmost (caller-chosen) one when given `*`
  (encode/uvicorn, uvicorn/middleware/proxy_headers.py, `_TrustedHosts`).
So trusting the public subnets' CIDRs records the address the ALB saw, whatever a caller writes.
"""

from __future__ import annotations

import ipaddress

from k8s_support import K8S, Manifests


def _outputs(overlay: str) -> dict[str, str]:
    text = (K8S / "overlays" / overlay / "cloudformation-outputs.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")


def test_only_the_public_subnets_are_trusted_proxies(manifests: Manifests) -> None:
    trusted = manifests.container_environment()["REGISTRO_FORWARDED_ALLOW_IPS"].split(",")
    assert trusted == _outputs(manifests.overlay)["PublicSubnetCidrs"].split(",")
    assert all(ipaddress.ip_network(cidr).prefixlen >= 16 for cidr in trusted), trusted


def test_the_alb_appends_the_address_it_saw(manifests: Manifests) -> None:
    annotations = manifests.one("Ingress", "registro")["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    attributes = dict(
        pair.strip().split("=", 1)
        for pair in annotations.get("alb.ingress.kubernetes.io/load-balancer-attributes", "")
        .replace("\n", ",")
        .split(",")
        if pair.strip()
    )
    assert attributes.get("routing.http.xff_header_processing.mode", "append") == "append"
