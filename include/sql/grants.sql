-- Least-privilege roles for the veeam_storage_efficiency DAG. Run by the DBA (a superuser),
-- connected to the results database, once and again after every schema change:
--
--   VEEAM_LOADER_PASSWORD='...' psql -X -d veeam_efficiency -f include/sql/grants.sql \
--        [-v owner=veeam_efficiency_owner] [-v loader=veeam_efficiency_loader]
--
-- * owner (NOLOGIN): owns schema feature3 and its tables. Nobody logs in as it, so no
--   application connection can drop, truncate or alter the tables.
-- * loader (LOGIN): the role of the DAG's postgres connection. It may read and write rows
--   of feature3 (SELECT, INSERT, UPDATE, DELETE: the upserts and the stale-scorecard delete)
--   and create TEMPORARY tables (the COPY staging), nothing else: no superuser, CREATEDB,
--   CREATEROLE, REPLICATION or BYPASSRLS, no CREATE on the database or any schema. The
--   history's monthly partitions it makes and drops only through two functions that run as
--   the owner (feature3.ensure_history_partitions, feature3.drop_history_partitions).
--   Because it does not own feature3, the DAG's first task only checks the tables and
--   leaves creating and migrating them to this script.
--
-- The password is read from the environment (VEEAM_LOADER_PASSWORD) or -v loader_password,
-- never from a command line; unset both to keep the current one (or use another auth method).
-- Idempotent: every statement may run again. include/sql/schema.sql is applied from here.
\set ON_ERROR_STOP on
\if :{?owner}
\else
\set owner veeam_efficiency_owner
\endif
\if :{?loader}
\else
\set loader veeam_efficiency_loader
\endif
\if :{?loader_password}
\else
\getenv loader_password VEEAM_LOADER_PASSWORD
\endif

BEGIN;

SELECT format('CREATE ROLE %I', :'owner')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'owner')
\gexec
ALTER ROLE :"owner" WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;

SELECT format('CREATE ROLE %I', :'loader')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :'loader')
\gexec
ALTER ROLE :"loader" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
\if :{?loader_password}
ALTER ROLE :"loader" WITH PASSWORD :'loader_password';
\endif
\unset loader_password
-- the loader must not be able to SET ROLE to the owner
SELECT format('REVOKE %I FROM %I', :'owner', :'loader')
 WHERE pg_catalog.pg_has_role(:'loader', :'owner', 'MEMBER')
\gexec

-- database: connect and stage in TEMP tables, but create no schema
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', current_database(), :'loader')
\gexec
SELECT format('REVOKE CREATE ON DATABASE %I FROM %I', current_database(), :'loader')
\gexec
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- schema and tables, owned by the owner role (also when an older deployment let the DAG's
-- role own them)
CREATE SCHEMA IF NOT EXISTS feature3 AUTHORIZATION :"owner";
ALTER SCHEMA feature3 OWNER TO :"owner";
\ir schema.sql
SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, :'owner')
  FROM pg_catalog.pg_class AS c
 WHERE c.relnamespace = 'feature3'::regnamespace AND c.relkind IN ('r', 'p')
   AND c.relowner <> :'owner'::regrole
\gexec

-- row access for the loader, nothing more (no TRUNCATE, REFERENCES, TRIGGER)
REVOKE ALL ON SCHEMA feature3 FROM PUBLIC;
GRANT USAGE ON SCHEMA feature3 TO :"loader";
REVOKE ALL ON ALL TABLES IN SCHEMA feature3 FROM PUBLIC, :"loader";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA feature3 TO :"loader";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA feature3
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"loader";

-- the history's monthly partitions: made and dropped only by these two functions, which run as
-- the owner (SECURITY DEFINER, a fixed search_path); the loader may call them, nobody else
ALTER FUNCTION feature3.ensure_history_partitions(timestamptz, timestamptz) OWNER TO :"owner";
ALTER FUNCTION feature3.drop_history_partitions(timestamptz) OWNER TO :"owner";
REVOKE ALL ON FUNCTION feature3.ensure_history_partitions(timestamptz, timestamptz),
                       feature3.drop_history_partitions(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION feature3.ensure_history_partitions(timestamptz, timestamptz),
                          feature3.drop_history_partitions(timestamptz) TO :"loader";

COMMIT;
