"""training.samples."""
