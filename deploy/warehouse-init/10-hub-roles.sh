#!/bin/sh
# First start of the warehouse container (docker-entrypoint-initdb.d): the hub's roles
# (warehouse/roles.sql) and the service logins' passwords from .env, so the pipeline,
# `hub sql` and the quality review log in as their own roles, never as the superuser.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -f /opt/hub/roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v loader="$HUB_LOADER_PASSWORD" -v reader="$HUB_READER_PASSWORD" \
    -v steward="$HUB_STEWARD_PASSWORD" -v pii_reader="$HUB_PII_READER_PASSWORD" <<'SQL'
ALTER ROLE hub_loader PASSWORD :'loader';
ALTER ROLE hub_reader PASSWORD :'reader';
ALTER ROLE hub_steward PASSWORD :'steward';
ALTER ROLE hub_pii_reader PASSWORD :'pii_reader';
ALTER DATABASE :"DBNAME" OWNER TO hub_owner;
SQL
