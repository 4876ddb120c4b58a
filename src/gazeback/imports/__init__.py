"""Importers: one module per capture format (HAR and mitmproxy flows, logs, pcap)."""
