"""recsvc.api."""
