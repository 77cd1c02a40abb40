"""The rolling update of the local stack, driven like production's (make rollout-local):

    python -m deploy.docker.rollout TAG

Run from the repository root (the Makefile's rollout-local does). The release's migrations run
first; then each stable replica in turn is taken out of HAProxy's pool, drained, stopped and
replaced by registro:TAG, and joins the pool once healthy. Progress goes to stderr; each step is
also one JSON line on stdout (deploy/docker/progress.py) so that the drills can check what
happened. The canary (deploy/docker/canary.py) uses the same steps.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.docker import compose, haproxy
from deploy.docker.progress import event, log, seen_within, wait_for

STATE_ENV = Path(".work/stack/stack.env")
STABLE = ("app1", "app2", "app3")


def deployed_tag() -> str:
    for line in STATE_ENV.read_text().splitlines():
        if line.startswith("REGISTRO_TAG="):
            return line.split("=", 1)[1]
    raise RuntimeError(f"no REGISTRO_TAG in {STATE_ENV}: is the stack up (make stack-up)?")


def record_deployed_tag(tag: str) -> None:
    lines = [ln for ln in STATE_ENV.read_text().splitlines() if not ln.startswith("REGISTRO_TAG=")]
    STATE_ENV.write_text("\n".join([*lines, f"REGISTRO_TAG={tag}"]) + "\n")


def drain_and_stop(service: str, server: str) -> None:
    """Take a replica out the way Kubernetes does, with the load balancer told first:
    out of HAProxy's pool (no new requests), in-flight requests finished, then SIGTERM; the
    service answers /readyz 503 while it drains and exits once its own requests are done."""
    haproxy.set_state(server, "drain")
    event("drain", server=server)
    took = wait_for(
        f"{server}: in-flight requests to finish", lambda: haproxy.sessions(server) == 0, 30
    )
    event("drained", server=server, seconds=round(took, 2))
    cid = compose.container(service)
    if cid is None:
        return
    compose.docker("kill", "--signal", "TERM", cid)
    event("sigterm", server=server)
    # The load balancer sees the draining replica's /readyz turn 503 (check status 503).
    saw_503 = seen_within(lambda: haproxy.stat(server)["check_code"] == "503", 15)
    event("readyz-503", server=server, seen=saw_503)
    wait_for(f"{service}: exit after SIGTERM", lambda: not compose.running(cid), 60)
    exit_code = int(compose.docker("inspect", "-f", "{{.State.ExitCode}}", cid))
    event("stopped", server=server, exit_code=exit_code)


def start_and_enable(service: str, server: str, env: dict[str, str]) -> None:
    compose.compose("up", "-d", "--no-deps", "--no-build", service, env=env)
    took = wait_for(
        f"{service}: healthy", lambda: compose.container_state(service) == "healthy", 120, 1
    )
    haproxy.set_state(server, "ready")
    took += wait_for(f"{server}: up in HAProxy", lambda: haproxy.servers()[server].in_pool, 30)
    event("ready", server=server, seconds=round(took, 2))


def migrate(tag: str) -> None:
    """The release's migrations, before any replica runs it, as the Kubernetes Job does: the
    replicas still on the previous release keep serving on the newer schema (expand, contract).
    A failure stops the release with nothing replaced."""
    log(f"migrate: registro migrate with registro:{tag}")
    out = compose.compose("run", "--rm", "--no-deps", "-T", "migrate", env={"REGISTRO_TAG": tag})
    event("migrated", tag=tag, output=out.strip().splitlines()[-1:])


def rollout(tag: str) -> None:
    compose.require_image(tag)
    log(f"rollout: registro:{tag} on {', '.join(STABLE)}, one at a time")
    event("rollout-start", tag=tag, previous=deployed_tag())
    migrate(tag)
    for service in STABLE:
        others = [s for s in STABLE if s != service]
        if not all(haproxy.servers()[s].in_pool for s in others):
            raise SystemExit(
                f"rollout: refusing to take {service} out while {others} are not all up"
            )
        log(f"rollout: {service}: drain, stop, replace")
        drain_and_stop(service, service)
        start_and_enable(service, service, {"REGISTRO_TAG": tag})
        log(f"rollout: {service} now runs registro:{tag}")
    record_deployed_tag(tag)
    event("rollout-done", tag=tag)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("tag")
    rollout(parser.parse_args(argv).tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
