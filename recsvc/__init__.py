"""recsvc: product recommendations (cross-sell, upsell) from purchase history, served fast."""

__version__ = "0.1.0"
