"""The "Storage efficiency" view: an Airflow 3 plugin (FastAPI app + UI entry) served by the api-server.

``plugins/storage_efficiency_view.py`` registers it; ``app.py`` holds the pages and JSON
endpoints, ``access.py`` the check through Airflow's auth manager, ``static/`` the built
browser code (sources and lockfile in ``include/ui/``).
"""
