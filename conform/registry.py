"""Which conformer maps which stream of which connector."""

from __future__ import annotations

from conform.base import Conformer
from conform.citymgmt import (
    CityMgmtCaseConformer,
    CityMgmtComponentConformer,
    CityMgmtUnitGridConformer,
)
from conform.gridmgmt import (
    EventsConformer,
    GridsConformer,
    HousesConformer,
    OrgsConformer,
    ResidentsConformer,
)
from conform.hotline12345 import Hotline12345Conformer
from conform.video import VideoAlarmConformer, VideoDeviceConformer
from conform.zongzhi import ZongzhiDisputes, ZongzhiMediationOrgs

# (connector name, stream name) → the conform step for its records.
CONFORMERS: dict[tuple[str, str], type[Conformer]] = {
    ("hotline12345", "workorders"): Hotline12345Conformer,
    ("citymgmt", "unit_grids"): CityMgmtUnitGridConformer,
    ("citymgmt", "components"): CityMgmtComponentConformer,
    ("citymgmt", "cases"): CityMgmtCaseConformer,
    ("video", "devices"): VideoDeviceConformer,
    ("video", "alarms"): VideoAlarmConformer,
    ("video", "alarm_backfill"): VideoAlarmConformer,
    ("gridmgmt", "grids"): GridsConformer,
    ("gridmgmt", "houses"): HousesConformer,
    ("gridmgmt", "orgs"): OrgsConformer,
    ("gridmgmt", "residents"): ResidentsConformer,
    ("gridmgmt", "events"): EventsConformer,
    ("zongzhi", "mediation_orgs"): ZongzhiMediationOrgs,
    ("zongzhi", "disputes"): ZongzhiDisputes,
}


def conformer_class(connector: str, stream: str) -> type[Conformer]:
    try:
        return CONFORMERS[(connector, stream)]
    except KeyError:
        raise KeyError(f"no conform step for stream {stream!r} of {connector!r}") from None
