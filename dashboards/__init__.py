"""Datasette configuration for gazeback's dashboards (installed as ``gazeback.dashboards``)."""
