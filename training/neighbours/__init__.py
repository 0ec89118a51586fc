"""training.neighbours.methods."""
