"""Answers: the store's lists and the ranking put together for a cart, a history, a
stored customer (``recommend``) and the e-mail export (``export``)."""
