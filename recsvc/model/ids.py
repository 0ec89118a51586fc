"""What an item or customer id may be: one rule for the API and for what the trainer publishes."""

from __future__ import annotations

import re

MAX_ITEM_ID_LENGTH = 64


MAX_CUSTOMER_ID_LENGTH = 128


ID_PATTERN = (
    r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]"
    r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"
)
"""What an item or customer id may be, in the API and in what the trainer publishes
(one rule for both: a published id is always one the API accepts): something besides
white space, and no control character (C0, DEL, C1: NUL and U+0085 among them) nor a
Unicode line or paragraph separator (U+2028, U+2029)."""


def valid_id(value: str, max_length: int) -> bool:
    """Whether ``value`` is an id the API accepts (``ID_PATTERN``, within ``max_length``)."""
    return 0 < len(value) <= max_length and re.match(ID_PATTERN, value) is not None
