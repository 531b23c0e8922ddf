"""Airflow DAG `hub_quality_report`: the weekly quality report, Monday 08:00 in the city's
time zone (the sources file's city.timezone).

Built by hub.dag_reports (tested there); this file only hands it to Airflow's DAG processor.
"""

from hub.dag_reports import REPORT_DAG_ID, quality_report_dag

globals()[REPORT_DAG_ID] = quality_report_dag()
