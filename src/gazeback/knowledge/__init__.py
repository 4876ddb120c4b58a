"""Tracker knowledge: the bundled lists, building and updating them, classification, URL rules, user agents."""
