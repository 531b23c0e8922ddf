"""12345 work orders → core.event; their callers → core.person; handling departments →
core.organization.

Field by field, schemas/mappings/hotline12345/mapping.yaml says it (read by
`MappedConformer`); categories and statuses map through the code tables beside it.
Lifecycle mapping (the hotline has no separate report or callback time): 受理
acceptTime is both the report and the acceptance; 派单 dispatchTime; 办结 finishTime is
`resolved_at`; an order in 已回访 (callback done) is closed at its last update.

Two of those times are the hub's, not the platform's: `reported_at` (a copy of
acceptTime) and `closed_at` (updateTime taken as the callback time). They are listed
in `derived_times`, so their order is a warning (derived_time_order), never a reason
to quarantine an order: a platform whose updateTime lags its finishTime has sent
nothing wrong.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from conform import values as v
from conform.base import Conformed, build
from conform.coords import CoordinateSettings, gcj02_columns_to_wgs84
from conform.derived import departments, people, person_keys
from conform.mapped import MappedConformer
from schemas.model import EVENT, ORGANIZATION, PERSON

PLATFORM = "hotline12345"


class Hotline12345Conformer(MappedConformer):
    platform, streams = PLATFORM, ("workorders",)
    primary = EVENT
    derived = (PERSON, ORGANIZATION)
    settings_model = CoordinateSettings
    settings: CoordinateSettings

    def conform(self, raw: pa.Table) -> Conformed:
        """The mapping file's columns, and those made of several fields."""
        cols, unparseable = self.columns(raw)
        if self.settings.coordinate_system == "gcj02":
            cols["longitude"], cols["latitude"] = gcj02_columns_to_wgs84(cols["longitude"],
                                                                         cols["latitude"])
        cols["closed_at"] = pc.if_else(pc.equal(cols["status"], "closed"),
                                       cols["source_updated_at"], pa.scalar(None, v.UTC_TIMESTAMP))
        cols["derived_times"] = v.listing({"reported_at": pc.is_valid(cols["reported_at"]),
                                           "closed_at": pc.is_valid(cols["closed_at"])},
                                          raw.num_rows)
        cols["source_category"] = pc.binary_join_element_wise(
            pc.fill_null(raw["categoryCode"], ""), pc.fill_null(raw["categoryName"], ""), " ")
        return Conformed(build(EVENT, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {"person": self._callers(raw, primary),
                "organization": departments(raw["handleDept"])}

    def _callers(self, raw: pa.Table, events: pa.Table) -> pa.Table:
        """One person record per caller who left a phone or ID number.

        The hotline has no caller key, so the record is keyed by a hash of what
        identifies the caller (ID number, else phone): never by the number itself.
        """
        keys = person_keys("caller", events["reporter_id_number"], events["reporter_phone"])
        known = pc.is_valid(keys)
        return people(pa.table({
            "source_id": keys,
            "name": v.trimmed(raw["callerName"]),
            "id_number": events["reporter_id_number"],
            "phone": events["reporter_phone"],
            **{c: events[c] for c in ("division_code", "source_division_code", "street_code")},
            "updated": events["source_updated_at"],
        }).filter(known), "caller")
