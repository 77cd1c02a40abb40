#!/bin/sh
# Patroni's post_bootstrap hook, run once on the member that initialises the cluster: the
# database and its owner, and a read-only monitoring role for the exporter.
# The owner is what the RDS master is on AWS: not a superuser, allowed to create roles. Only
# `registro migrate` logs in as it; it creates the service's own role (registro_app), which gets
# CONNECT and data privileges only. Patroni passes a superuser connection string as $1.
# A cluster bootstrapped by a point-in-time restore (restore.yml) already has all of this.
set -eu
if [ "$(psql -XAtc "SELECT count(*) FROM pg_roles WHERE rolname = 'registro'" "$1")" = 1 ]; then
    echo "create-app-database: restored cluster, the roles and database exist"
else
    psql -q -v ON_ERROR_STOP=1 -v owner_pw="$REGISTRO_OWNER_DB_PASSWORD" -v monitor_pw="$MONITOR_DB_PASSWORD" "$1" <<'SQL'
CREATE ROLE registro LOGIN CREATEROLE PASSWORD :'owner_pw';
CREATE DATABASE registro OWNER registro;
REVOKE ALL ON DATABASE registro FROM PUBLIC;
CREATE ROLE monitor LOGIN PASSWORD :'monitor_pw' IN ROLE pg_monitor;
SQL
fi
