"""The trainer's stages and evaluation on synthetic baskets whose answers are known."""
