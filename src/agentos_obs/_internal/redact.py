"""Credential-shaped strings, scrubbed wherever text from the app is recorded: captured
content, parameters, and exception messages (provider errors often echo the key)."""

from __future__ import annotations

import re

__all__ = ["REDACTED", "SECRET_VALUE", "scrub"]

REDACTED = "[REDACTED]"

# Values that look like credentials whatever their key (OpenAI/Anthropic/Google/AWS/GitHub
# key formats, bearer headers, JWTs).
SECRET_VALUE = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|sk-ant-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|"
    r"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9\-]{10,}|"
    r"[Bb]earer\s+[A-Za-z0-9._\-]{8,}|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
)


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    return SECRET_VALUE.sub(REDACTED, text)
