#!/bin/sh
# Continuous backups (start.sh runs this beside Patroni in every member): while this member is
# the primary, a pgBackRest backup every BACKUP_INTERVAL_SECONDS, the first one full (at stack
# start, and on a member newly primary after a failover or a restore, which is a new
# timeline), incremental after. WAL is archived continuously by archive_command in between
# (patroni.yml), so any moment since the oldest backup can be restored.
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
