"""``python -m training``: the trainer's commands (``main``), its options and its runs."""
