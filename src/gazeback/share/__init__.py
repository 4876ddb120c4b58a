"""Sharing: the anonymized export, its schema, verifier, merge and datasheet."""
