#!/bin/sh
# The part of the official postgres image's entrypoint that compose relies on: on the first
# start, a cluster whose superuser is POSTGRES_USER with POSTGRES_PASSWORD (scram over TCP), and
# the database POSTGRES_DB; then the server.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s' "$POSTGRES_PASSWORD" > "$password_file"
    initdb --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 -D "$PGDATA" >/dev/null
    rm -f "$password_file"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "${POSTGRES_DB:-$POSTGRES_USER}" != postgres ]; then
        createdb --username="$POSTGRES_USER" "${POSTGRES_DB:-$POSTGRES_USER}"
    fi
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@"
