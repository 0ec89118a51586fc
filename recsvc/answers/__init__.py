"""recsvc.answers."""
