"""The ``recsvc`` command, one module per command group; the only part of recsvc that
imports the trainer (``training``), whose commands it hands on."""
