"""training.engines.spark.engine."""
