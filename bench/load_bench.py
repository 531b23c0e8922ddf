"""Benchmark: the hub's validate-and-merge path against a raw PostgreSQL COPY of the same
rows, without the peers (dlt): `bench.peer_bench --contenders copy,hub`.

    python -m bench.load_bench --rows 200000 --kind workorders

The rows, the loads and the table are bench.peer_bench's (see its doc); `make bench`
runs the peer benchmark with dlt as well.
"""

from __future__ import annotations

import sys

from bench import peer_bench


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return peer_bench.main(["--contenders", "copy,hub", *args])


if __name__ == "__main__":
    sys.exit(main())
