"""Airflow ingest DAGs: one `hub_ingest_<source>` per enabled source of the sources file.

Built by hub.dag_factory (tested there); this file only hands them to Airflow's
DAG processor. Edit sources.yaml (or HUB_SOURCES_FILE) to add, pause or reschedule.
"""

from hub.dag_factory import ingest_dags

globals().update(ingest_dags())
