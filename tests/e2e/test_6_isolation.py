"""Isolation: the load balancer's container cannot reach the database (it is not on the data
network); a replica, which is, can (the control that shows the probe itself works)."""

from __future__ import annotations

from deploy.docker import compose

from tests.e2e import load as loadgen
from tests.e2e.conftest import SERVICE_PORT, STACK_URL
from tests.e2e.report import conclude

PROBE = "exec 3<>/dev/tcp/{host}/{port}"


def address(service: str, network: str = "registro_data") -> str:
    cid = compose.container(service)
    assert cid
    return compose.docker(
        "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}', cid
    ).strip()


def reach(from_service: str, host: str, port: int) -> bool:
    probe = PROBE.format(host=host, port=port)
    return compose.run_in(from_service, "timeout", "3", "bash", "-c", probe).returncode == 0


def resolves(from_service: str, name: str) -> bool:
    return compose.run_in(from_service, "getent", "hosts", name).returncode == 0


def reach_from_replica(host: str, port: int) -> bool:
    code = (
        "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3).close()"
    )
    return compose.run_in("app1", "python3", "-c", code, host, str(port)).returncode == 0


def test_load_balancer_cannot_reach_the_database(ca: str, api_key: str) -> None:
    targets = {f"{svc}:5432": address(svc) for svc in ("pg1", "pg2", "pgproxy")}
    with loadgen.Load(
        base_url=STACK_URL, ca=ca, key=api_key, rate=20, concurrency=4, max_seconds=120
    ) as load:
        load.mark("probes from HAProxy")
        from_lb = {name: reach("haproxy", ip, 5432) for name, ip in targets.items()}
        names_from_lb = {svc: resolves("haproxy", svc) for svc in ("pg1", "pg2", "pgproxy", "etcd")}
        load.mark("probes from a replica")
        from_replica = {name: reach_from_replica(ip, 5432) for name, ip in targets.items()}
        lb_reaches_replica = reach("haproxy", "app1", SERVICE_PORT)
        results = load.stop()
    conclude(
        "isolation",
        "Network isolation (the load balancer cannot reach the database)",
        "From inside the HAProxy container, a TCP connection to port 5432 of each database "
        "container's address and a DNS lookup of their names; the same connection from a service "
        "replica is the control. Under light load.",
        {
            "load": loadgen.summary(results),
            "from HAProxy, TCP connect succeeded": from_lb,
            "from HAProxy, name resolved": names_from_lb,
            "from a replica, TCP connect succeeded": from_replica,
            "HAProxy reaches a replica (control)": lb_reaches_replica,
        },
        {
            "HAProxy cannot connect to any database port": not any(from_lb.values()),
            "HAProxy cannot resolve the database names": not any(names_from_lb.values()),
            "a replica can connect to every one (the probe works)": all(from_replica.values()),
            "HAProxy reaches the replicas (the probe works)": lb_reaches_replica,
            "no failed request": not loadgen.failures(results),
        },
        load=load,
    )
