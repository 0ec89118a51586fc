"""recsvc.cli.main."""
