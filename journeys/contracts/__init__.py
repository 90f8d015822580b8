"""The payload contracts: inputs, outputs and state of every workflow, activity, signal, query
and update.

They live in the domain layer so that ``activities/``, ``starter/`` and ``workflows/`` all
import them from here; nothing in this package imports Temporal or does I/O. Every payload
holds counts and Redis keys, never user lists beyond one page, so histories stay small at any
audience size.
"""
