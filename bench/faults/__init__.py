"""``python -m bench.faults``: the fault harness of issue 20.

Each scenario runs the same load (:mod:`bench.faults.load`): a blast of ``--users`` users to
the tests' recording HTTP provider (batches of 50, ``Idempotency-Key`` honoured) beside a
running event-triggered journey fed through the ingest API, and breaks one part of the
system while the load is under way: the worker (kill -9), Redis (kill -9, with and without
its append-only file), PostgreSQL, the Temporal server, the provider (30% failures, then
down for 60 s) or the ingest API (kill -9). Afterwards :mod:`bench.faults.outcome` counts,
from PostgreSQL and the provider's own record, what every user and every accepted event
got. ``tests/test_faults.py`` runs a short form of each scenario.
"""
