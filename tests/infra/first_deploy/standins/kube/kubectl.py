"""`kubectl`: the verbs the deploy scripts use, against the stand-in API server. `kubectl
kustomize` (and `version`) is the real kubectl (rendering is offline).

- A Job runs to its end at once: condition Complete, or Failed (reason BackoffLimitExceeded) when
  the scenario's "jobs" says so for its name (https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions);
  `kubectl wait --for=condition=C` on a Job without condition C times out, as the real one does
  after --timeout;
  `kubectl logs job/NAME` prints the scenario's "logs" for it. No pod runs: what a Job's program
  does (restore.py's data check) is tested apart, against a real PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from argo import abort, measure, reconcile_rollout
from cluster import NAMESPACE, Refused, built_in, key, load, save, scenario
from external_secrets import refresh_secret
from load_balancer import delete_ingress, reconcile_ingress
from rbac import authorize
from volumes import release_claims


def parse_kubectl(args: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    words: list[str] = []
    flags: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            name, value = arg[2:].split("=", 1)
            flags[name] = value
        elif arg in ("-n", "--namespace", "-f", "-l", "--selector", "-o", "-p", "--patch",
                     "--type", "--patch-file", "--for", "--timeout", "--tail", "--filename",
                     "--subresource", "--field-manager"):  # fmt: skip
            flags[arg.lstrip("-")] = args[i + 1]
            i += 1
        elif arg.startswith("-"):
            flags[arg.lstrip("-")] = True
        else:
            words.append(arg)
        i += 1
    aliases = {"n": "namespace", "f": "filename", "l": "selector", "p": "patch"}
    return words, {aliases.get(k, k): v for k, v in flags.items()}


def selected(obj: dict[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels", {})
    for term in re.split(r",(?![^()]*\))", selector) if selector else []:
        term = term.strip()
        notin = re.fullmatch(r"(\S+)\s+notin\s+\((.*)\)", term)
        if notin:
            if labels.get(notin[1]) in [v.strip() for v in notin[2].split(",")]:
                return False
        elif "!=" in term:
            name, value = term.split("!=", 1)
            if labels.get(name) == value:
                return False
        elif "=" in term:
            name, value = term.split("=", 1)
            if labels.get(name) != value.lstrip("="):
                return False
        elif labels.get(term) is None:
            return False
    return True


def kubectl_apply(state: dict[str, Any], flags: dict[str, Any]) -> None:
    documents = [d for d in yaml.safe_load_all(Path(str(flags["filename"])).read_text()) if d]
    items = [i for d in documents for i in (d["items"] if d.get("kind") == "List" else [d])]
    chosen = [i for i in items if selected(i, str(flags.get("selector", "")))]
    for obj in chosen:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if not built_in(obj["apiVersion"]) and kind not in state["crds"]:
            raise Refused(
                f'error: resource mapping not found for name: "{name}" namespace: "{NAMESPACE}" '
                f'from "{flags["filename"]}": no matches for kind "{kind}" in version '
                f'"{obj["apiVersion"]}"\nensure CRDs are installed first'
            )
        for verb in ("get", "create", "patch"):
            authorize(state, kind, verb, name)
    for obj in chosen:
        kind, name = obj["kind"], obj["metadata"]["name"]
        object_key = key(kind, name, obj["metadata"].get("namespace"))
        old = state["objects"].get(object_key)
        obj = json.loads(json.dumps(obj))
        if kind == "Rollout":
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            changed = old is None or old.get("spec") != obj.get("spec")
            obj["metadata"]["generation"] = generation + (1 if changed else 0)
            obj["metadata"]["uid"] = (old or {}).get("metadata", {}).get("uid", "uid-rollout")
            obj["metadata"]["annotations"] = (old or {}).get("metadata", {}).get("annotations", {})
            obj["status"] = (old or {}).get("status", {})
            state["objects"][object_key] = obj
            if changed:
                reconcile_rollout(state, obj)
        else:
            state["objects"][object_key] = obj
            if kind == "Ingress":
                reconcile_ingress(state, obj)
            if kind == "Job":
                outcome = scenario().get("jobs", {}).get(name, "Complete")
                condition = {"type": outcome, "status": "True"}
                if outcome == "Failed":
                    condition["reason"] = "BackoffLimitExceeded"
                obj["status"] = {"conditions": [condition]}
            if kind == "ExternalSecret":
                refresh_secret(obj)
        print(f"{kind.lower()}/{name} {'configured' if old else 'created'}")


def jsonpath(obj: Any, expression: str) -> str:
    def value(path: str) -> str:
        current = obj
        for part in re.findall(r"[^.\[\]]+", path):
            if isinstance(current, list):
                current = (
                    current[int(part)] if part.isdigit() and int(part) < len(current) else None
                )
            elif isinstance(current, dict):
                current = current.get(part)
            if current is None:
                return ""
        return current if isinstance(current, str) else json.dumps(current)

    return re.sub(r"\{\.([^}]*)\}", lambda m: value(m[1]), expression)


def find(
    state: dict[str, Any], kinds: list[str], name: str | None, selector: str
) -> list[dict[str, Any]]:
    return [
        o for o in state["objects"].values()
        if o["kind"] in kinds and (name is None or o["metadata"]["name"] == name)
        and selected(o, selector) and (o["kind"] != "ReplicaSet" or not name)
    ]  # fmt: skip


KIND_NAMES = {
    "rollout": "Rollout", "rollouts": "Rollout", "replicaset": "ReplicaSet", "ingress": "Ingress",
    "job": "Job", "externalsecret": "ExternalSecret", "pods": "Pod", "pod": "Pod",
    "pvc": "PersistentVolumeClaim", "persistentvolumeclaim": "PersistentVolumeClaim",
    "pv": "PersistentVolume", "persistentvolume": "PersistentVolume",
    "deployment": "Deployment", "statefulset": "StatefulSet",
}  # fmt: skip


def target(words: list[str]) -> tuple[list[str], str | None]:
    """`rollout registro`, `job/registro-migrate`, `rollout,replicaset` -> kinds, name."""
    first = words[0]
    if "/" in first:
        kind, name = first.split("/", 1)
        return [KIND_NAMES.get(kind, kind)], name
    kinds = [KIND_NAMES.get(k, k) for k in first.split(",")]
    return kinds, words[1] if len(words) > 1 else None


def kubectl(args: list[str]) -> None:
    if args[:1] in (["kustomize"], ["version"]):  # the client's own work: the real kubectl's
        os.execv(os.environ["STANDIN_REAL_KUBECTL"], ["kubectl", *args])  # noqa: S606
    state = load()
    if not state.get("context"):
        raise Refused("error: no context: run aws eks update-kubeconfig first")
    words, flags = parse_kubectl(args)
    verb, rest = words[0], words[1:]
    try:
        if verb == "apply":
            kubectl_apply(state, flags)
        elif verb == "get":
            kinds, name = target(rest)
            for kind in kinds:
                authorize(state, kind, "get" if name else "list", name or "")
            found = find(state, kinds, name, str(flags.get("selector", "")))
            for rollout in (o for o in found if o["kind"] == "Rollout"):
                measure(state, rollout)
            if name and not found:
                raise Refused(f'Error from server (NotFound): {rest[0]} "{name}" not found')
            output = str(flags.get("output", flags.get("o", "")))
            if output == "json":
                print(json.dumps(found[0] if name else {"kind": "List", "items": found}))
            elif output.startswith("jsonpath="):
                print(jsonpath(found[0], output.removeprefix("jsonpath=")), end="")
            else:
                print("\n".join(f"{o['kind']}/{o['metadata']['name']}" for o in found))
        elif verb == "patch":
            kinds, name = target(rest)
            (rollout,) = find(state, kinds, name, "")
            subresource = str(flags.get("subresource", ""))
            authorize(state, kinds[0], "patch", name or "", subresource)
            patch = json.loads(
                Path(str(flags["patch-file"])).read_text()
                if "patch-file" in flags
                else str(flags["patch"])
            )
            if subresource == "status":
                rollout["status"].update(patch.get("status", {}))
                if rollout["status"].get("abort"):
                    state.pop("analysis", None)
                abort(rollout)
            else:
                # The status subresource: the main resource ignores changes to status.
                if "spec" in patch and patch["spec"] != {}:
                    merged = json.loads(json.dumps(rollout["spec"]))
                    merged.update(patch["spec"])
                    if merged != rollout["spec"]:
                        rollout["spec"] = merged
                        rollout["metadata"]["generation"] += 1
                        reconcile_rollout(state, rollout)
                print(
                    f"rollout.argoproj.io/{name} patched"
                    + ("" if "spec" in patch else " (no change)")
                )
                save(state)
                return
            print(f"rollout.argoproj.io/{name} patched")
        elif verb == "wait":
            condition = str(flags.get("for", ""))
            if condition == "delete":
                kinds, _ = target(rest)
                authorize(state, kinds[0], "list", "")
                for object_key in [k for k, o in state["objects"].items() if o["kind"] in kinds]:
                    if kinds == ["Ingress"] and not delete_ingress(state, object_key):
                        save(state)
                        raise Refused(f"error: timed out waiting for the condition on {object_key}")
            else:
                kinds, name = target(rest)
                authorize(state, kinds[0], "get", name or "")
                found = find(state, kinds, name, "")
                if not found:
                    raise Refused(f'Error from server (NotFound): "{name}" not found')
                wanted = condition.removeprefix("condition=")
                conditions = found[0].get("status", {}).get("conditions", [])
                if found[0]["kind"] == "Job" and not any(
                    c["type"] == wanted and c["status"] == "True" for c in conditions
                ):
                    raise Refused(f"error: timed out waiting for the condition on jobs/{name}")
            print("condition met")
        elif verb == "delete":
            kinds, name = target(rest)
            authorize(state, kinds[0], "delete", name or "")
            for object_key in [
                k for k, o in state["objects"].items()
                if o["kind"] in kinds and (name is None or o["metadata"]["name"] == name)
            ]:  # fmt: skip
                if kinds == ["PersistentVolumeClaim"]:
                    state["objects"][object_key]["metadata"]["deletionTimestamp"] = "now"
                    continue
                if kinds == ["Ingress"]:
                    # Deletion marks it; the controller's finalizer decides when it goes.
                    state["objects"][object_key]["metadata"]["deletionTimestamp"] = "now"
                    if flags.get("wait") == "false":
                        continue
                    if not delete_ingress(state, object_key):
                        save(state)
                        raise Refused("error: timed out waiting for the Ingress finalizer")
                else:
                    del state["objects"][object_key]
            release_claims(state)
        elif verb == "annotate":
            kinds, name = target(rest)
            authorize(state, kinds[0], "patch", name or "")
            found = find(state, kinds, name, "")
            if not found:
                raise Refused(f'Error from server (NotFound): {rest[0]} "{name}" not found')
            for pair in rest[2:] if "/" not in rest[0] else rest[1:]:
                annotation, value = pair.split("=", 1)
                found[0]["metadata"].setdefault("annotations", {})[annotation] = value
            if found[0]["kind"] == "ExternalSecret":
                refresh_secret(found[0])
            print(f"{rest[0]}/{name} annotated")
        elif verb == "logs":
            _, name = target(rest)
            print(scenario().get("logs", {}).get(name, "(stand-in: no pod logs)"))
        elif verb == "auth" and rest[:1] == ["can-i"]:
            print("yes")
        else:
            raise Refused(f"stand-in kubectl: {verb} is not modelled")
    finally:
        save(state)
