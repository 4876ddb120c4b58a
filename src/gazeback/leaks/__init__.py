"""Leak detection: the person's identifiers (needles), decoding request parts, detecting leaks, redacting secrets."""
