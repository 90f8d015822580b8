#!/bin/sh
# One-shot job (service `temporal-schema`): bring Temporal's two PostgreSQL databases to the
# schema version that ships in this admin-tools image, before the server starts.
#
# Safe to run on every `docker compose up`: setup-schema only creates the version tables and
# leaves an already-versioned database alone, update-schema applies only newer scripts.
# The databases themselves are created by docker/temporal/postgres-init on first start.
#
# Connection: SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER, SQL_PASSWORD (read by temporal-sql-tool).
set -eu

: "${SQL_HOST:?}" "${SQL_PORT:?}" "${SQL_USER:?}" "${SQL_PASSWORD:?}" "${SQL_PLUGIN:?}"
: "${TEMPORAL_DB:=temporal}"
: "${TEMPORAL_VISIBILITY_DB:=temporal_visibility}"
schema_root=/etc/temporal/schema/postgresql/v12

migrate() {
    db=$1
    dir=$2
    echo "temporal-schema: ${db} <- ${dir}"
    temporal-sql-tool --database "${db}" setup-schema -v 0.0
    temporal-sql-tool --database "${db}" update-schema -d "${dir}"
}

migrate "${TEMPORAL_DB}" "${schema_root}/temporal/versioned"
migrate "${TEMPORAL_VISIBILITY_DB}" "${schema_root}/visibility/versioned"
echo "temporal-schema: done"
