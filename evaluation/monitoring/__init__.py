"""Production monitoring: registered scorers sampling live traffic, backfills, quality over time, trace archival.

* ``models``: ``RegisteredScorer`` and its immutable ``RegisteredScorerVersion`` history, the ``MonitoringWork``
  queue, the ``MonitoringResult`` ledger (one per trace × registration version), ``BackfillJob``,
  ``ArchivePolicy``.
* ``registrations``: register / start / update / stop / restart / delete (each a new version).
* ``sampling``: the deterministic sample decision and queueing completed traces.
* ``scoring``: what a ``db_worker`` does with the queue (claim with SKIP LOCKED, score, write once).
* ``backfill``: re-scoring history as a job.
* ``schedule``: periodic work the workers share (sweeps, archival).
"""
