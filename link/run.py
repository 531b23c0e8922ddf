"""Every linking step, in the order each needs the last: people (and event reporters),
organizations, incidents. What `hub link run` and the refresh DAG's `link` task call."""

from __future__ import annotations

from typing import Any

import psycopg

from link.incidents import cluster_incidents
from link.orgs import link_organizations
from link.people import link_people


def link_all(conn: psycopg.Connection, *, full: bool = False) -> dict[str, Any]:
    """Link people, organizations and incidents on `conn` (the pipeline's, hub_loader),
    each step committed on its own; returns what each did. `full`: people and incidents
    are linked afresh (the keys of unchanged records stay as they were) instead of
    incrementally."""
    people = link_people(conn, full=full)
    conn.commit()
    organizations = link_organizations(conn)
    conn.commit()
    incidents = cluster_incidents(conn, full=full)
    conn.commit()
    return {"person": people.as_json(), "organization": organizations.as_dict(),
            "incident": incidents.as_dict()}
