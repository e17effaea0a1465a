-- Results of the veeam_storage_efficiency DAG. Idempotent: run by the DAG's first task
-- on every run, so a new database, a new column or a new index needs no manual step.
CREATE SCHEMA IF NOT EXISTS feature3;

-- The identifiers (vbr_host, job_id, session_id) are opaque keys, never sorted for people:
-- COLLATE "C" compares them byte by byte, which keeps every key and index look-up off the
-- locale's collation rules (faster key look-ups and index inserts on a large load; bench/RESULTS.md).

-- One scorecard per job per day, plus one roll-up row per VBR host (job_id '*', scope 'host').
CREATE TABLE IF NOT EXISTS feature3.metrics_storage_efficiency (
    vbr_host                     text COLLATE "C" NOT NULL,
    job_id                       text COLLATE "C" NOT NULL,
    analysis_date                date        NOT NULL,
    scope                        text        NOT NULL CHECK (scope IN ('job', 'host')),
    job_name                     text        NOT NULL,
    window_start                 timestamptz NOT NULL,
    window_end                   timestamptz NOT NULL,
    sessions_in_window           integer     NOT NULL,
    sessions_scored              integer     NOT NULL,
    sessions_excluded            integer     NOT NULL,
    excluded_by_reason           jsonb       NOT NULL,
    anomalous_sessions           integer     NOT NULL,
    critical_anomalies           integer     NOT NULL,
    data_scored_bytes            double precision NOT NULL,
    dedup_factor                 double precision NOT NULL,
    compression_factor           double precision NOT NULL,
    combined_factor              double precision NOT NULL,
    coefficient_of_variation     double precision,
    dedup_score                  double precision NOT NULL,
    compression_score            double precision NOT NULL,
    trend_score                  double precision NOT NULL,
    consistency_score            double precision NOT NULL,
    anomaly_score                double precision NOT NULL,
    overall_score                double precision NOT NULL,
    grade                        char(1)     NOT NULL CHECK (grade IN ('A', 'B', 'C', 'D', 'F')),
    efficiency_rating            text        NOT NULL,
    trend_classification         text        NOT NULL,
    trend_p_value                double precision,
    trend_change                 double precision,
    raw_daily_gb                 double precision NOT NULL,
    current_daily_gb             double precision NOT NULL,
    target_daily_gb              double precision NOT NULL,
    optimization_potential_gb    double precision NOT NULL,
    projected_monthly_savings_gb double precision NOT NULL,
    annual_savings_usd           double precision NOT NULL,
    quality_flags                jsonb       NOT NULL,
    PRIMARY KEY (vbr_host, job_id, analysis_date)
);
-- The grade in context (README, "Two grades"; docs/context-grade.md). Added in place to tables
-- made before it; rows written before it keep NULLs (and no recommendations) until re-run.
ALTER TABLE feature3.metrics_storage_efficiency
    ADD COLUMN IF NOT EXISTS context_expected_dedup_factor       double precision,
    ADD COLUMN IF NOT EXISTS context_expected_compression_factor double precision,
    ADD COLUMN IF NOT EXISTS context_score                       double precision,
    ADD COLUMN IF NOT EXISTS context_grade                       char(1)
        CHECK (context_grade IN ('A', 'B', 'C', 'D', 'F')),
    ADD COLUMN IF NOT EXISTS attainable_potential_gb             double precision,
    ADD COLUMN IF NOT EXISTS attainable_annual_savings_usd       double precision,
    ADD COLUMN IF NOT EXISTS recommendations                     jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN IF NOT EXISTS change_point_at                     timestamptz,
    ADD COLUMN IF NOT EXISTS change_point_shift                  double precision;
CREATE INDEX IF NOT EXISTS metrics_storage_efficiency_date_idx
    ON feature3.metrics_storage_efficiency (analysis_date);

-- Jobs a run saw but could not score (fewer scorable sessions in the window than
-- min_sessions), one row per job per day: "not scored" is then told from "not there".
-- Replaced per host and day like the scorecards, in the same transaction.
CREATE TABLE IF NOT EXISTS feature3.unscored_jobs (
    vbr_host         text COLLATE "C" NOT NULL,
    job_id           text COLLATE "C" NOT NULL,
    analysis_date    date        NOT NULL,
    job_name         text        NOT NULL,
    sessions_found   integer     NOT NULL,
    sessions_needed  integer     NOT NULL,
    reason           text        NOT NULL,
    PRIMARY KEY (vbr_host, job_id, analysis_date)
);

-- Every session a run collected, one row per (vbr_host, session_id), scored or not.
-- A history made before it was partitioned (a plain table) steps aside: renamed with its
-- indexes, its rows copied into the partitioned table at the end of this file, then dropped.
DO $unpartitioned$
DECLARE
    idx record;
BEGIN
    IF (SELECT relkind FROM pg_catalog.pg_class
         WHERE oid = to_regclass('feature3.storage_efficiency_history')) = 'r' THEN
        FOR idx IN SELECT indexrelid::regclass AS name, c.relname FROM pg_catalog.pg_index AS i
                     JOIN pg_catalog.pg_class AS c ON c.oid = i.indexrelid
                    WHERE i.indrelid = 'feature3.storage_efficiency_history'::regclass
        LOOP
            EXECUTE format('ALTER INDEX %s RENAME TO %I', idx.name, idx.relname || '_unpartitioned');
        END LOOP;
        ALTER TABLE feature3.storage_efficiency_history RENAME TO storage_efficiency_history_unpartitioned;
    END IF;
END
$unpartitioned$;

-- One partition per calendar month (UTC) of creation_time, made by ensure_history_partitions
-- before a load and dropped whole by drop_history_partitions (retention): never row by row.
-- vbr_version, collected_at and analysis_date are those of the run that last changed the row:
-- a run that collects a session again unchanged leaves its row alone (no new row version).
CREATE TABLE IF NOT EXISTS feature3.storage_efficiency_history (
    vbr_host               text COLLATE "C" NOT NULL,
    session_id             text COLLATE "C" NOT NULL,
    vbr_version            text        NOT NULL,
    collected_at           timestamptz NOT NULL,
    job_id                 text COLLATE "C" NOT NULL,
    job_name               text        NOT NULL,
    job_type               text        NOT NULL,
    object_name            text,
    algorithm              text        NOT NULL,
    result                 text        NOT NULL,
    is_retry               boolean     NOT NULL,
    creation_time          timestamptz NOT NULL,
    end_time               timestamptz,
    data_size_bytes        bigint      NOT NULL,
    backup_size_bytes      bigint      NOT NULL,
    read_size_bytes        bigint      NOT NULL,
    transferred_size_bytes bigint      NOT NULL,
    dedup_ratio_raw        integer     NOT NULL,
    compress_ratio_raw     integer     NOT NULL,
    dedup_ratio            double precision,
    compression_ratio      double precision,
    combined_ratio         double precision,
    excluded_reason        text,
    is_anomaly             boolean     NOT NULL,
    anomaly_score          double precision,
    anomaly_reason         text,
    analysis_date          date        NOT NULL,
    PRIMARY KEY (vbr_host, session_id, creation_time)
) PARTITION BY RANGE (creation_time);
-- One job's sessions in time order, for the Storage efficiency view's job page (a few ms
-- instead of a scan of the whole history). Its price is paid on every load (bench/RESULTS.md,
-- "history index by job and time"), so its key is a 64-bit hash of job_id, not the text: a
-- third of the size, and it stays in shared buffers on a large load where the text key
-- (vbr_host, job_id, creation_time) made most of a load's time (2.4x a load without it).
-- Readers match the hash and then the job_id and vbr_host themselves (view_queries.job_sessions).
DROP INDEX IF EXISTS feature3.storage_efficiency_history_job_time_idx;
CREATE INDEX IF NOT EXISTS storage_efficiency_history_job_hash_time_idx
    ON feature3.storage_efficiency_history ((hashtextextended(job_id, 0)), creation_time);

-- The Airflow DAG run that wrote each scorecard (the view links to it), i.e. the last run that
-- changed it (a re-run with the same result leaves it alone); NULL for rows written before this
-- column existed.
ALTER TABLE feature3.metrics_storage_efficiency ADD COLUMN IF NOT EXISTS dag_run_id text;

-- Contract v2: the machine of a per-machine child session (agent policies, VBR 12 backup copy);
-- tables made before it get it at the end.
ALTER TABLE feature3.storage_efficiency_history ADD COLUMN IF NOT EXISTS object_name text;

-- Tables made before the identifiers were COLLATE "C": convert them once (rebuilds their
-- indexes under an exclusive lock; a no-op, and no lock, once done).
DO $migrate$
DECLARE
    col record;
BEGIN
    FOR col IN
        SELECT a.attrelid::regclass AS tab, a.attname AS name
          FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid IN ('feature3.metrics_storage_efficiency'::regclass,
                              'feature3.storage_efficiency_history'::regclass,
                              'feature3.unscored_jobs'::regclass)
           AND a.attname IN ('vbr_host', 'job_id', 'session_id') AND NOT a.attisdropped
           AND a.attcollation <> 'pg_catalog."C"'::regcollation
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER COLUMN %I TYPE text COLLATE "C"', col.tab, col.name);
    END LOOP;
END
$migrate$;

-- What the VBR server said about each job's storage on each day (contract v2 `jobs`), so a
-- change of settings is visible over time. Null: unknown to this VBR version.
CREATE TABLE IF NOT EXISTS feature3.job_settings (
    vbr_host                  text COLLATE "C" NOT NULL,
    job_id                    text COLLATE "C" NOT NULL,
    analysis_date             date        NOT NULL,
    job_name                  text        NOT NULL,
    job_type                  text,
    compression_level         text CHECK (compression_level IN ('None', 'DedupeFriendly', 'Optimal', 'High', 'Extreme', 'Auto')),
    block_size_kb             integer CHECK (block_size_kb IN (256, 512, 1024, 4096, 8192)),
    inline_dedup              boolean,
    encryption                boolean,
    repository_id             text,
    repository_name           text,
    repository_type           text,
    dedup_appliance           boolean,
    decompress_before_storing boolean,
    align_blocks              boolean,
    fast_clone                boolean,
    object_storage            boolean,
    scale_out                 boolean,
    PRIMARY KEY (vbr_host, job_id, analysis_date)
);

-- Each interval of a VBR server's sessions a run collected, and when the server answered:
-- incremental collection asks only for what no settled interval covers (recheck_days).
CREATE TABLE IF NOT EXISTS feature3.collection_log (
    vbr_host          text COLLATE "C" NOT NULL,
    interval_start    timestamp with time zone NOT NULL,
    interval_end      timestamp with time zone NOT NULL,
    collection_target text        NOT NULL,
    collected_at      timestamp with time zone NOT NULL,
    sessions_returned integer     NOT NULL,
    dag_run_id        text,
    PRIMARY KEY (vbr_host, interval_start, interval_end),
    CHECK (interval_end > interval_start)
);
CREATE INDEX IF NOT EXISTS collection_log_target_idx
    ON feature3.collection_log (collection_target, interval_end);

-- Partitions: the loader owns no table, so it creates and drops them only through these
-- functions, which run as their owner (the schema's owner); grants.sql lets the loader
-- execute them and nobody else.
CREATE OR REPLACE FUNCTION feature3.ensure_history_partitions(first timestamptz, last timestamptz)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    month timestamp := date_trunc('month', first AT TIME ZONE 'UTC');  -- UTC months
    name text;
    made integer := 0;
BEGIN
    IF first IS NULL OR last IS NULL OR last < first OR last - first > interval '3 years' THEN
        RAISE EXCEPTION 'ensure_history_partitions: % .. % is not the span of one load', first, last;
    END IF;
    -- two loads at once would race on CREATE TABLE IF NOT EXISTS: one at a time, until commit
    PERFORM pg_advisory_xact_lock(hashtextextended('feature3:partitions', 0));
    WHILE month <= last AT TIME ZONE 'UTC' LOOP
        name := 'storage_efficiency_history_' || to_char(month, '"y"YYYY"m"MM');
        IF to_regclass(format('feature3.%I', name)) IS NULL THEN
            EXECUTE format('CREATE TABLE IF NOT EXISTS feature3.%I PARTITION OF feature3.storage_efficiency_history '
                           'FOR VALUES FROM (%L) TO (%L)',
                           name, month AT TIME ZONE 'UTC', (month + interval '1 month') AT TIME ZONE 'UTC');
            made := made + 1;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN made;
END
$fn$;

-- Drops each month whose every session was created before horizon, and the collection log's
-- intervals that ended by then (their sessions are gone: they must not count as collected).
CREATE OR REPLACE FUNCTION feature3.drop_history_partitions(horizon timestamptz)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('feature3:partitions', 0));  -- as ensure_history_partitions
    FOR part IN
        SELECT c.relname, to_date(substring(c.relname FROM '[0-9]{4}m[0-9]{2}$'), 'YYYY"m"MM') AS month
          FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'feature3.storage_efficiency_history'::regclass
           AND c.relname ~ '^storage_efficiency_history_y[0-9]{4}m[0-9]{2}$'
         ORDER BY 2
    LOOP
        EXIT WHEN ((part.month + interval '1 month') AT TIME ZONE 'UTC') > horizon;
        EXECUTE format('DROP TABLE IF EXISTS feature3.%I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    DELETE FROM feature3.collection_log WHERE interval_end <= horizon;
    RETURN dropped;
END
$fn$;
REVOKE ALL ON FUNCTION feature3.ensure_history_partitions(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION feature3.drop_history_partitions(timestamptz) FROM PUBLIC;

-- The rows of a history made before partitioning (see $unpartitioned$ above), copied once.
DO $copy_unpartitioned$
DECLARE
    columns text;
    first timestamptz;
    last timestamptz;
BEGIN
    IF to_regclass('feature3.storage_efficiency_history_unpartitioned') IS NOT NULL THEN
        SELECT min(creation_time), max(creation_time) INTO first, last
          FROM feature3.storage_efficiency_history_unpartitioned;
        IF first IS NOT NULL THEN
            PERFORM feature3.ensure_history_partitions(first, last);
        END IF;
        SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO columns
          FROM pg_catalog.pg_attribute AS a
         WHERE a.attrelid = 'feature3.storage_efficiency_history_unpartitioned'::regclass
           AND a.attnum > 0 AND NOT a.attisdropped;
        EXECUTE format('INSERT INTO feature3.storage_efficiency_history (%s) SELECT %s '
                       'FROM feature3.storage_efficiency_history_unpartitioned', columns, columns);
        DROP TABLE feature3.storage_efficiency_history_unpartitioned;
    END IF;
END
$copy_unpartitioned$;
