"""Development tooling, not shipped with the DAG: the synthetic data generator the demo data,
the bench and the tests are made from. Import from the repository root with ``plugins`` on
``sys.path`` (``pyproject.toml`` sets both for pytest)."""
