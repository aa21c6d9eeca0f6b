#!/usr/bin/env bash
# Runs once, when the data volume is initialised (the image's docker-entrypoint-initdb.d), as the
# superuser against the temporary server. POSTGRES_DB (pgtrail_source) already exists.
set -euo pipefail
: "${CDC_PASSWORD:?CDC_PASSWORD must be set: the login role pgtrail_cdc of the consumer uses it}"

echo "include_dir = '/etc/postgresql/conf.d'" >> "$PGDATA/postgresql.conf"

# The vault database, and the consumer's least-privileged login role (docs/source-tracking.md,
# "Least privilege"): REPLICATION plus membership in pgtrail_consumer. `pgtrail install` creates
# pgtrail_consumer only if it is missing and then grants it what the consumer may call, so
# creating the group role first is enough.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v cdc_password="$CDC_PASSWORD" <<'SQL'
create database pgtrail_vault;
create role pgtrail_consumer nologin;
create role pgtrail_cdc login replication password :'cdc_password' in role pgtrail_consumer;
SQL
