"""Labeling views: ``manage`` (staff pages: schemas, sessions, dashboard) and ``review`` (the expert's screen)."""
