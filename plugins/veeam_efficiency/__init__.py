"""Storage-efficiency scoring of Veeam Backup & Replication jobs.

Plain Python (no Airflow import) so every piece is unit-testable in milliseconds;
the DAG in ``dags/veeam_storage_efficiency.py`` only wires these modules together.
The package lives in the Airflow plugins folder because Airflow puts that folder on
``sys.path``; ``plugins/.airflowignore`` keeps the plugin manager from importing it.
"""
