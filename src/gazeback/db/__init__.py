"""The database: migrations (the only schema), views, and every write."""
