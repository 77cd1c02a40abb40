#!/bin/sh
# Continuous backups (start.sh runs this beside Patroni in every member): while this member is
# the primary, a pgBackRest backup every BACKUP_INTERVAL_SECONDS. The container's first one is
# full (at stack start; on the standby promoted by a failover; on the member a restore started,
# a new timeline), the next ones incremental. WAL is archived continuously by archive_command
# in between (patroni.yml), so any moment since the oldest backup ended can be restored.
# Before its first backup it creates the stanza (idempotent: a restored cluster keeps its system
# identifier), here rather than in Patroni's post_bootstrap, where a lock held by this loop or
# by archive-push would fail the cluster's bootstrap; here a failure is retried.
set -u
type=full
while :; do
    if [ "$(psql -U postgres -d postgres -XAtc 'SELECT NOT pg_is_in_recovery()' 2>/dev/null)" = t ] \
        && { [ "$type" = incr ] || pgbackrest stanza-create; } \
        && pgbackrest --type="$type" backup; then
        echo "backup-loop: $type backup done; next in ${BACKUP_INTERVAL_SECONDS}s"
        type=incr
        sleep "$BACKUP_INTERVAL_SECONDS"
    else
        sleep 5  # not the primary, not up yet, or pgBackRest failed (its log says why)
    fi
done
