"""training.stages."""
