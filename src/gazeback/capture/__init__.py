"""Capture: mitmproxy hooks, the flow snapshot, the writer thread and its worker."""
