"""training.cli.main."""
