#!/bin/sh
# Continuous backups (start.sh runs this beside Patroni in every member): while this member is
# the primary, a pgBackRest backup every BACKUP_INTERVAL_SECONDS. The container's first one is
# full (at stack start; on the standby promoted by a failover; on the member a restore started,
# a new timeline), the next ones incremental. WAL is archived continuously by archive_command
# in between (patroni.yml), so any moment since the oldest backup ended can be restored.
set -u
type=full
while :; do
    if [ "$(psql -U postgres -d postgres -XAtc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] \
        && pgbackrest --type="$type" backup; then
        echo "backup-loop: $type backup done; next in ${BACKUP_INTERVAL_SECONDS}s"
        type=incr
        sleep "$BACKUP_INTERVAL_SECONDS"
    else
        sleep 5  # not the primary, not yet up, or the stanza not yet created
    fi
done
