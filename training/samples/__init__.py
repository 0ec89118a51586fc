"""Generated data with known answers: synthetic purchases at any size (``synthetic``) and
a small shop's platform exports (``shops``)."""
