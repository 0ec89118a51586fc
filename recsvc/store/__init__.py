"""recsvc.store.reader."""
