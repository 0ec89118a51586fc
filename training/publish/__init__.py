"""training.publish.publisher."""
