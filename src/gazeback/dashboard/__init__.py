"""The dashboard: the Datasette plugin, serving it, and the demo trail."""
