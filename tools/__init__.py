"""Developer tools (not shipped): ``tree`` draws the README's layout of the code."""
