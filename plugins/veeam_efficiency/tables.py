"""The names of the results tables, apart from storage.py so the DAG file can name them without pandas."""

SCHEMA = "feature3"
SCORECARDS = "metrics_storage_efficiency"
HISTORY = "storage_efficiency_history"
UNSCORED = "unscored_jobs"
