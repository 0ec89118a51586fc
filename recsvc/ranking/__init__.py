"""recsvc.ranking.cart."""
