"""Devices: adding them (WireGuard, proxy credentials), workshops, decryption status."""
