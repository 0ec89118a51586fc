"""Pure functions with known answers: no Redis, no server."""
