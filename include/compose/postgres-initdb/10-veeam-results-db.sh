#!/usr/bin/env bash
# Creates the results database of the veeam_storage_efficiency DAG and its least-privilege owner.
#
# Run once by the official postgres image, as the container's bootstrap superuser
# ($POSTGRES_USER), when the data directory is empty: docker-compose.yaml mounts
# include/compose/postgres-initdb/ at /docker-entrypoint-initdb.d and include/sql/ at
# /opt/veeam/sql. To re-run it, drop the postgres volume (docker compose down -v) or run
# this file by hand with POSTGRES_USER, POSTGRES_DB and VEEAM_RESULTS_DB_PASSWORD set.
#
# What it does (idempotent):
#   * role veeam_efficiency: LOGIN with a password, NOSUPERUSER NOCREATEDB NOCREATEROLE
#     NOREPLICATION NOBYPASSRLS; the DAG's postgres_default connection logs in as it;
#   * database veeam_efficiency, owned by the bootstrap superuser (so the application role
#     cannot drop it or change its settings); PUBLIC loses CONNECT and TEMPORARY on it, and
#     CONNECT on $POSTGRES_DB, the Airflow metadata database;
#   * then include/sql/grants.sql, as the superuser, with loader=veeam_efficiency and
#     owner=veeam_efficiency_owner: the NOLOGIN owner role gets schema feature3 and its
#     tables (schema.sql), the DAG's role only CONNECT, TEMPORARY and row access
#     (SELECT, INSERT, UPDATE, DELETE) on feature3: it cannot drop, truncate or alter them.
#
# The password is read by psql from the environment (\getenv), never put on a command line.
set -euo pipefail

: "${VEEAM_RESULTS_DB_PASSWORD:?VEEAM_RESULTS_DB_PASSWORD must be set (see .env.example)}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
VEEAM_SQL_DIR="${VEEAM_SQL_DIR:-/opt/veeam/sql}"

results_db=veeam_efficiency
results_role=veeam_efficiency
results_owner=veeam_efficiency_owner

psql_super() {
    psql -X -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" "$@"
}

echo "veeam-results-db: creating role ${results_role} and database ${results_db}"
psql_super --dbname "$POSTGRES_DB" \
    -v role="$results_role" -v db="$results_db" <<'SQL'
\getenv role_password VEEAM_RESULTS_DB_PASSWORD
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'role')
\gexec
-- (re)assert the attributes and password, also when the role already existed
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    CONNECTION LIMIT 50 PASSWORD :'role_password';
\unset role_password
SELECT format('CREATE DATABASE %I ENCODING %L TEMPLATE template0', :'db', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = :'db')
\gexec
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
-- an older version of this script let the role create (and own) schema feature3
REVOKE CREATE ON DATABASE :"db" FROM :"role";
-- nor may it (or any other non-owner) open the bootstrap database: that is Airflow's metadata
SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database())
\gexec
SQL

echo "veeam-results-db: applying $VEEAM_SQL_DIR/grants.sql (schema feature3 owned by ${results_owner})"
VEEAM_LOADER_PASSWORD="$VEEAM_RESULTS_DB_PASSWORD" psql_super --dbname "$results_db" \
    -v loader="$results_role" -v owner="$results_owner" -f "$VEEAM_SQL_DIR/grants.sql"

echo "veeam-results-db: done"
