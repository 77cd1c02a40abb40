"""The EBS CSI driver and the PV controller, for the prometheus chart's volumes.

- The prometheus chart's Prometheus server (a Deployment) and Alertmanager (a StatefulSet) claim
  gp3 volumes: each PVC is bound to a PV the EBS CSI driver provisions as an EC2 volume (created
  in moto, tagged as the driver tags it: kubernetes.io/created-for/pvc/namespace and /name). The
  StorageClass's reclaimPolicy Delete deletes the PV and its volume when the PVC goes
  (https://kubernetes.io/docs/concepts/storage/persistent-volumes/#delete), but a PVC in use by a
  pod is kept until no pod uses it (`kubernetes.io/pvc-protection`, same page, "Storage Object in
  Use Protection"), and a StatefulSet's claims outlive it (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#persistentvolumeclaim-retention).
  Deleting the cluster leaves the volumes: that is what teardown must not do.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from cluster import key

# The prometheus chart's workloads and their claims: (kind, workload, claim, size in GiB).
PROMETHEUS_VOLUMES = [
    ("Deployment", "prometheus-server", "prometheus-server", 8),
    ("StatefulSet", "prometheus-alertmanager", "storage-prometheus-alertmanager-0", 1),
]


def ec2() -> Any:
    import boto3  # the rehearsal's moto, as the EBS CSI driver calls EC2

    return boto3.client("ec2", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def install_prometheus(state: dict[str, Any]) -> None:
    for kind, workload, claim, size in PROMETHEUS_VOLUMES:
        state["objects"][key(kind, workload, "monitoring")] = {
            "kind": kind, "metadata": {"name": workload, "namespace": "monitoring"},
        }  # fmt: skip
        if key("PersistentVolumeClaim", claim, "monitoring") in state["objects"]:
            continue
        tags = [
            {"Key": "kubernetes.io/created-for/pvc/namespace", "Value": "monitoring"},
            {"Key": "kubernetes.io/created-for/pvc/name", "Value": claim},
        ]
        volume = ec2().create_volume(
            AvailabilityZone=os.environ.get("AWS_REGION", "eu-west-1") + "a", Size=size,
            VolumeType="gp3", Encrypted=True,
            TagSpecifications=[{"ResourceType": "volume", "Tags": tags}],
        )["VolumeId"]  # fmt: skip
        pv = f"pvc-{hashlib.sha256(claim.encode()).hexdigest()[:12]}"
        state["objects"][key("PersistentVolumeClaim", claim, "monitoring")] = {
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": "monitoring",
                         "finalizers": ["kubernetes.io/pvc-protection"]},
            "spec": {"volumeName": pv, "storageClassName": "gp3-data-key"},
            "user": [kind, workload],
        }  # fmt: skip
        state["objects"][key("PersistentVolume", pv, None)] = {
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {"claimRef": {"namespace": "monitoring", "name": claim},
                     "persistentVolumeReclaimPolicy": "Delete",
                     "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volume}},
        }  # fmt: skip


def release_claims(state: dict[str, Any]) -> None:
    """The PV controller and the EBS CSI driver: a deleted claim no pod uses goes, and with it
    its PV and (reclaimPolicy Delete) its EBS volume."""
    for object_key, claim in list(state["objects"].items()):
        if claim["kind"] != "PersistentVolumeClaim" or "deletionTimestamp" not in claim["metadata"]:
            continue
        user = claim.get("user") or ["", ""]
        if key(user[0], user[1], "monitoring") in state["objects"]:
            continue  # kubernetes.io/pvc-protection: a pod still uses it
        del state["objects"][object_key]
        pv_key = key("PersistentVolume", claim["spec"]["volumeName"], None)
        pv = state["objects"].pop(pv_key, None)
        if pv is not None:
            ec2().delete_volume(VolumeId=pv["spec"]["csi"]["volumeHandle"])
