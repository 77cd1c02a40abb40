#!/bin/sh
# Patroni's custom bootstrap (restore.yml): the data directory from the newest backup taken
# before RESTORE_TARGET_TIME, recovering WAL from the archive up to that time, then promoting.
# pgBackRest picks that backup itself (--set not given, --type=time).
set -eu
: "${RESTORE_TARGET_TIME:?restore-bootstrap: RESTORE_TARGET_TIME is not set}"
install -d -m 700 "$PGBACKREST_PG1_PATH"  # pgBackRest restores into an existing directory
exec pgbackrest --type=time --target="$RESTORE_TARGET_TIME" \
    --target-action=promote restore
