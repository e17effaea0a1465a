"""Storage-efficiency scoring of Veeam Backup & Replication jobs.

Two layers. :mod:`veeam_efficiency.airflow` holds every module that imports Airflow
(notifiers, assets, the SSH-hook collector, the mapping of errors to retry or fail).
Everything else is plain Python that never imports Airflow (``tests/unit/test_layers.py``
checks it), so the analysis, the contract and the writer are unit-testable in
milliseconds; the DAG in ``dags/veeam_storage_efficiency.py`` wires the two together.
``docs/architecture.md`` maps the modules. The package lives in the Airflow plugins
folder because Airflow puts that folder on ``sys.path``; ``plugins/.airflowignore``
keeps the plugin manager from importing it.
"""
