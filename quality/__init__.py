"""Data quality: rules derived from the unified model, their vectorised checks, and the
Great Expectations suite that records them.

- `quality.rules`: `evaluate(entity, table, ctx)` gives every row an outcome;
- `quality.checks`: the standard checks (GB 11643, GB 32100, GB/T 28181 …) as
  whole-column functions;
- `quality.gx_suite`: `build_suite(entity)` and `run_suite(...)` (imports GX, so it
  is not imported here).
"""
