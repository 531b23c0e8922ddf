"""12345 work orders → core.event; their callers → core.person; handling departments →
core.organization.

Lifecycle mapping (the hotline has no separate report or callback time):
受理 acceptTime is both the report and the acceptance; 派单 dispatchTime; 办结
finishTime is `resolved_at`; an order in 已回访 (callback done) is closed at its last
update. Categories and statuses map through schemas/mappings/hotline12345/.

Two of those times are the hub's, not the platform's: `reported_at` (a copy of
acceptTime) and `closed_at` (updateTime taken as the callback time). They are listed
in `derived_times`, so their order is a warning (derived_time_order), never a reason
to quarantine an order: a platform whose updateTime lags its finishTime has sent
nothing wrong.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from base import identity
from base.pii import keyed_hash, mask_name
from conform import values as v
from conform.base import Conformed, Conformer, build, last_per_key
from conform.coords import gcj02_columns_to_wgs84
from conform.mappings import category_mapping, status_mapping
from schemas.model import EVENT, ORGANIZATION, PERSON

PLATFORM = "hotline12345"
TIME_FIELDS = {
    "accepted_at": "acceptTime",
    "dispatched_at": "dispatchTime",
    "resolved_at": "finishTime",
    "deadline_at": "deadline",
    "source_updated_at": "updateTime",
}


class Hotline12345Conformer(Conformer):
    primary = EVENT
    derived = (PERSON, ORGANIZATION)

    def conform(self, raw: pa.Table) -> Conformed:
        tz = self.city.timezone
        unparseable: dict[str, np.ndarray] = {}
        cols: dict[str, v.Column | pa.Scalar | None] = {}

        for target, source in TIME_FIELDS.items():
            cols[target], unparseable[source] = v.local_times(raw[source], tz)
        cols["reported_at"] = cols["accepted_at"]

        lon, unparseable["longitude"] = v.floats(raw["longitude"])
        lat, unparseable["latitude"] = v.floats(raw["latitude"])
        if getattr(self.settings, "coordinate_system", "wgs84") == "gcj02":
            lon, lat = gcj02_columns_to_wgs84(lon, lat)
        cols["longitude"], cols["latitude"] = lon, lat
        cols["is_urgent"], unparseable["isUrgent"] = v.booleans(raw["isUrgent"])

        status = v.map_codes(raw["status"], status_mapping(PLATFORM))
        cols["status"] = status
        cols["source_status"] = raw["status"]
        cols["closed_at"] = pc.if_else(pc.equal(status, "closed"), cols["source_updated_at"],
                                       pa.scalar(None, v.UTC_TIMESTAMP))
        cols["derived_times"] = v.listing({"reported_at": pc.is_valid(cols["reported_at"]),
                                           "closed_at": pc.is_valid(cols["closed_at"])},
                                          raw.num_rows)
        cols["category_code"] = v.map_codes(raw["categoryCode"], category_mapping(PLATFORM))
        cols["source_category"] = pc.binary_join_element_wise(
            pc.fill_null(raw["categoryCode"], ""), pc.fill_null(raw["categoryName"], ""), " "
        )

        cols["source_id"] = raw["orderNo"]
        cols["channel"] = v.trimmed(raw["channel"])
        cols["appeal_type"] = v.trimmed(raw["appealType"])
        # Free text is stored exactly as sent: no trimming, no normalising.
        cols["title"] = raw["title"]
        cols["description"] = raw["content"]
        cols["address"] = raw["address"]
        cols["division_code"] = v.trimmed(raw["districtCode"])
        cols["street_code"] = v.trimmed(raw["streetCode"])
        cols["handling_org"] = v.trimmed(raw["handleDept"])
        cols["satisfaction"] = v.trimmed(raw["satisfaction"])
        cols["reporter_name_masked"] = mask_name(v.blank_to_null(raw["callerName"]))
        cols["reporter_phone"] = identity.phones(raw["callerPhone"])
        cols["reporter_id_number"] = identity.citizen_ids(v.blank_to_null(raw["callerIdNo"]))
        return Conformed(build(EVENT, cols, raw.num_rows), unparseable)

    def derive(self, raw: pa.Table, primary: pa.Table) -> dict[str, pa.Table]:
        return {"person": self._callers(raw, primary), "organization": self._departments(raw)}

    def _callers(self, raw: pa.Table, events: pa.Table) -> pa.Table:
        """One person record per caller who left a phone or ID number.

        The hotline has no caller key, so the record is keyed by a hash of what
        identifies the caller (ID number, else phone): never by the number itself.
        """
        ids, phones = events["reporter_id_number"], events["reporter_phone"]
        who = pc.coalesce(
            pc.binary_join_element_wise(
                "id:", identity.per_distinct(ids, identity.citizen_id_identity), ""),
            pc.binary_join_element_wise("tel:", phones, ""),
        )
        keep = np.asarray(pc.is_valid(who), dtype=bool)
        if not keep.any():
            return build(PERSON, {}, 0)
        table = pa.table({
            "source_id": pc.binary_join_element_wise(
                "caller:", identity.per_distinct(who.filter(pa.array(keep)),
                                                 lambda s: keyed_hash(s)[:32]), ""),
            "name": v.trimmed(raw["callerName"]).filter(pa.array(keep)),
            "id_number": ids.filter(pa.array(keep)),
            "phone": phones.filter(pa.array(keep)),
            "division_code": events["division_code"].filter(pa.array(keep)),
            "source_division_code": events["source_division_code"].filter(pa.array(keep)),
            "street_code": events["street_code"].filter(pa.array(keep)),
            "updated": events["source_updated_at"].filter(pa.array(keep)),
        })
        # A caller who called twice in one batch: the latest call's details stand.
        table = last_per_key(table, "source_id", "updated")
        cols = {c: table[c] for c in table.column_names if c != "updated"}
        cols["role"] = pa.scalar("caller")
        return build(PERSON, cols, table.num_rows)

    def _departments(self, raw: pa.Table) -> pa.Table:
        names = pc.unique(v.trimmed(raw["handleDept"]).combine_chunks()
                          if isinstance(raw["handleDept"], pa.ChunkedArray)
                          else v.trimmed(raw["handleDept"])).drop_null()
        return build(ORGANIZATION, {"source_id": names, "org_name": names,
                                    "org_type": pa.scalar("department")}, len(names))
