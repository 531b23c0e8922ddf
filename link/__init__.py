"""Resolve: the same person, organization or incident across platforms, linked into one
golden record (or event cluster) with the evidence kept.

Above the warehouse (it reads and writes core tables through a loader connection), below
the pipeline and the CLI that schedule it.
"""
