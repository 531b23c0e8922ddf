"""Airflow DAG `hub_refresh`: after any core table changed (an Asset event of an ingest
DAG's stream task), the cross-source consistency checks and entity linking.

Built by hub.dag_refresh (tested there); this file only hands it to Airflow's DAG processor.
"""

from hub.dag_refresh import REFRESH_DAG_ID, refresh_dag

globals()[REFRESH_DAG_ID] = refresh_dag()
