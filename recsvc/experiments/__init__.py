"""recsvc.experiments."""
