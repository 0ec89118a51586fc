"""The service's pure parts: ranking, attribution."""
