"""training.evaluation."""
