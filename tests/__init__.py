"""recsvc's tests: ``unit``, ``contract`` (every backend), ``integration``, ``system``; the
fixtures (real Redis servers and a cluster) in ``conftest``."""
