"""The trainer's stages, one module each: read and clean (``ingest``, ``parsing``,
``catalog``), matrices, ALS (``als``), what an upsell may offer (``kinds``), stored
histories, recipes, the data floor, live events."""
