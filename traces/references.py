"""Row references from user text and the user a write is recorded against.

URLs, form fields, command-line arguments and API parameters name rows by their id as text. A
reference that is not one (letters, signs, non-ASCII digits, more digits than a 64-bit key holds)
names nothing, so callers answer 404 or "not found" instead of letting the database raise.
"""

from __future__ import annotations

from typing import Any

BIGINT_MAX = 2**63 - 1


def pk_from_text(text: str) -> int | None:
    """The positive 64-bit primary key ``text`` spells (surrounding blanks allowed), else None."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if 0 < number <= BIGINT_MAX else None


def acting_user(user: Any) -> Any:
    """The user to record as the author of a write: None for a missing or anonymous one (commands, hooks)."""
    return user if user is not None and user.is_authenticated else None
