"""recsvc's offline trainer: purchases in, a versioned model in Redis out."""
