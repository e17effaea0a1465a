"""The metadata-database steps the dag-processor would do, for tests that need the DAGs registered."""

from __future__ import annotations


def sync_dags_and_unpause(dag_id: str, paused: bool = False) -> None:
    """Write the DAG folder to the metadata DB (as the dag-processor does) and (un)pause ``dag_id``."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        assert not bag.import_errors, bag.import_errors
        sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        session.get(DagModel, dag_id).is_paused = paused
