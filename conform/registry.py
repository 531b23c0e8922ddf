"""Which conformer maps the records of which connector."""

from __future__ import annotations

from conform.base import Conformer
from conform.hotline12345 import Hotline12345Conformer

CONFORMERS: dict[str, type[Conformer]] = {"hotline12345": Hotline12345Conformer}


def conformer_class(connector: str) -> type[Conformer]:
    try:
        return CONFORMERS[connector]
    except KeyError:
        raise KeyError(f"no conform step for connector {connector!r}") from None
