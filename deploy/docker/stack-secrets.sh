#!/usr/bin/env bash
# The local stack's database passwords, random per machine, in .work/stack (git-ignored) as the
# env files compose.yaml reads. Idempotent: existing ones are kept (the database has them).
set -euo pipefail
DIR=${STACK_DIR:-.work/stack}
umask 077
mkdir -p "$DIR"
[ -s "$DIR/db.env" ] && [ -s "$DIR/app.env" ] && [ -s "$DIR/exporter.env" ] \
  && [ -s "$DIR/app-db-password" ] && exit 0
pw() { openssl rand -hex 24; }
superuser=$(pw) replication=$(pw) app=$(pw) monitor=$(pw)
cat >"$DIR/db.env" <<ENV
PATRONI_SUPERUSER_PASSWORD=$superuser
PATRONI_REWIND_PASSWORD=$superuser
PATRONI_REPLICATION_PASSWORD=$replication
REGISTRO_DB_PASSWORD=$app
MONITOR_DB_PASSWORD=$monitor
ENV
# The service's password is a file it reads at each new connection (as from a Kubernetes Secret),
# so it is not in the containers' environment; readable by the service's user only.
echo "DATABASE_URL=postgresql://registro@pgproxy:5432/registro" >"$DIR/app.env"
echo "$app" >"$DIR/app-db-password"
chown 10001:10001 "$DIR/app-db-password"
echo "DATA_SOURCE_NAME=postgresql://monitor:$monitor@pg1:5432/postgres?sslmode=disable,postgresql://monitor:$monitor@pg2:5432/postgres?sslmode=disable" >"$DIR/exporter.env"
echo "stack-secrets: new passwords in $DIR"
