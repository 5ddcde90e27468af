#!/bin/sh
# Streaming replication on the primary of compose.yaml's "cluster" profile,
# run once by the postgres image when it initialises its volume: the user
# the replica connects as, a slot that keeps the WAL the replica has not
# received yet, and the pg_hba rule that lets it in. Local passwords, as
# everywhere in compose.yaml.
set -e
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD 'replicator';
SELECT pg_create_physical_replication_slot('replica_1');
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
