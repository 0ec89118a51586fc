"""Stage 5: the offline evaluation (held-out cases, recommenders, metrics, baselines,
tuning), the quality gate and the report."""
