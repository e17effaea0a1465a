"""The Airflow layer: every module of the package that imports Airflow lives here.

``notifiers`` (the notifiers and alert delivery), ``assets`` (the results tables as
asset events), ``collect`` (picks the collector and builds the SSH hook), ``ssh_collector``
(the collector over an ``SSHHook``), ``history`` (the stored sessions the
steps after ``collect`` read) and ``errors`` (domain errors to retry or fail, in one
place). The rest of ``veeam_efficiency`` never imports Airflow; this package imports it
and the DAG files import this package.
"""
