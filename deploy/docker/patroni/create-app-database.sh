#!/bin/sh
# Patroni's post_bootstrap hook, run once on the member that initialises the cluster: the
# service's own role and database, and a read-only monitoring role for the exporter.
# Patroni passes a superuser connection string as $1.
set -eu
psql -q -v ON_ERROR_STOP=1 -v app_pw="$REGISTRO_DB_PASSWORD" -v monitor_pw="$MONITOR_DB_PASSWORD" "$1" <<'SQL'
CREATE ROLE registro LOGIN PASSWORD :'app_pw';
CREATE DATABASE registro OWNER registro;
CREATE ROLE monitor LOGIN PASSWORD :'monitor_pw' IN ROLE pg_monitor;
SQL
