#!/bin/sh
# The member's command: Patroni, with the backup loop beside it (Patroni as PID 1 reaps it), and
# with restore.yml added to the configuration when a point-in-time restore is asked for
# (RESTORE_TARGET_TIME, set by make restore-local). Patroni merges a directory's files in order.
set -eu
: "${BACKUP_INTERVAL_SECONDS:?start: BACKUP_INTERVAL_SECONDS is not set (compose.yaml)}"
config=/etc/patroni/patroni.yml
if [ -n "${RESTORE_TARGET_TIME:-}" ]; then
    config=/tmp/patroni
    mkdir -p "$config"
    ln -sf /etc/patroni/patroni.yml "$config/10-patroni.yml"
    ln -sf /etc/patroni/restore.yml "$config/20-restore.yml"
    echo "start: a new cluster will be restored to $RESTORE_TARGET_TIME if this member bootstraps it"
fi
backup-loop &
exec patroni "$config"
