#!/usr/bin/env bash
# The local stack's database passwords, random per machine, in .work/stack (git-ignored) as the
# env files compose.yaml reads. Idempotent: existing ones are kept (the database has them).
set -euo pipefail
DIR=${STACK_DIR:-.work/stack}
umask 077
mkdir -p "$DIR"
[ -s "$DIR/db.env" ] && [ -s "$DIR/exporter.env" ] \
  && [ -s "$DIR/owner-db-password" ] && [ -s "$DIR/app-db-password" ] && exit 0
pw() { openssl rand -hex 24; }
superuser=$(pw) replication=$(pw) owner=$(pw) app=$(pw) monitor=$(pw)
cat >"$DIR/db.env" <<ENV
PATRONI_SUPERUSER_PASSWORD=$superuser
PATRONI_REWIND_PASSWORD=$superuser
PATRONI_REPLICATION_PASSWORD=$replication
REGISTRO_OWNER_DB_PASSWORD=$owner
MONITOR_DB_PASSWORD=$monitor
ENV
# The database passwords of the tables' owner (Patroni creates it; `migrate` logs in as it) and
# of the service's own role (`migrate` sets it) are files read at each new connection (as from a
# Kubernetes Secret), never in the containers' environment; readable by the service's user only.
echo "$owner" >"$DIR/owner-db-password"
echo "$app" >"$DIR/app-db-password"
chown 10001:10001 "$DIR/owner-db-password" "$DIR/app-db-password"
rm -f "$DIR/app.env"  # from before the role split: the URLs are in compose.yaml now
echo "DATA_SOURCE_NAME=postgresql://monitor:$monitor@pg1:5432/postgres?sslmode=disable,postgresql://monitor:$monitor@pg2:5432/postgres?sslmode=disable" >"$DIR/exporter.env"
echo "stack-secrets: new passwords in $DIR"
