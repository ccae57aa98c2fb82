"""The one redactor: credentials recognised by key name and by shape, wherever data leaves.

Every sink reads sealed span records, and the seal runs this redactor once over names,
attributes, events and errors; the logging paths run it on every entry. So a secret is
replaced before the store, the exporters, the logs, the dashboard or the CLI ever see it.

By key name: a mapping entry whose key names a credential (``api_key``, ``Authorization``,
``x-api-key``, ``password``, ``client_secret``…) has its value replaced, whatever the value.

By shape, inside any text:

* URL userinfo (``https://user:pass@host``) and query parameters with credential-like keys
  (``?key=…``, ``&api_key=…``, ``&sig=…``);
* ``key=value``, ``key: value`` and ``"key": "value"`` pairs whose key names a credential;
* ``Bearer`` and ``Basic`` authorization values;
* the well-known provider key formats (OpenAI/Anthropic ``sk-…``, Google ``AIza…``, AWS
  ``AKIA…``, GitHub ``ghp_…``, Slack ``xox?-…``, Hugging Face ``hf_…``, JWTs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["REDACTED", "SECRET_VALUE", "is_secret_key", "redact", "scrub"]

REDACTED = "[REDACTED]"

# Key names that carry credentials, decided on the words of the key (split at ".", "_", "-",
# spaces and camelCase): ``api_key``, ``x-api-key``, ``Authorization``, ``client_secret``,
# ``access_token``… but not ``max_tokens``, ``llm.time_to_first_token_ms``, ``token_count``.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "secret", "authorization", "auth", "cookie", "credential",
        "credentials", "apikey", "signature", "sig", "bearer", "privatekey", "accesskey",
        "sessionkey", "subscriptionkey", "passphrase",
    }
)  # fmt: skip
_KEY_QUALIFIERS = frozenset({"api", "access", "secret", "private", "session", "subscription", "x"})
_WORD_SPLIT = re.compile(r"[._\-\s/]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Names of credentials in text: the specific ones as ``name=value`` or ``name: value``; the
# generic words (key, token, sig) only as ``name=value``, which prose rarely has.
_STRONG_WORDS = (
    r"api[_-]?key|apikey|x-api-key|access[_-]?token|refresh[_-]?token|id[_-]?token|"
    r"auth[_-]?token|session[_-]?token|secret|client[_-]?secret|password|passwd|authorization|"
    r"private[_-]?key|access[_-]?key(?:[_-]?id)?|secret[_-]?access[_-]?key|signature|"
    r"subscription[_-]?key|credentials?"
)
_KEY_WORDS = _STRONG_WORDS + r"|token|sig|key|pwd"

# Values that look like credentials whatever their key.
SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{16,}|sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,}|"
    r"AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9\-]{10,}|"
    r"hf_[A-Za-z0-9]{30,}|"
    r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})"
)
_AUTH_SCHEME = re.compile(r"\b([Bb]earer|[Bb]asic)(\s+)[A-Za-z0-9._~+/=\-]{6,}")
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s:@]*:[^/\s@]*@")
_QUERY_PARAM = re.compile(r"([?&;](?:" + _KEY_WORDS + r")=)[^&#\s\"']+", re.I)
# key=value / key: value / "key": "value" outside URLs.
_VALUE = r"(?!\[REDACTED\]|[Bb]earer\b|[Bb]asic\b)([^\s\"',;&}\]]{3,})"
_PAIR = re.compile(
    r"((?<![A-Za-z0-9_\-])[\"']?(?:" + _STRONG_WORDS + r")[\"']?\s*[=:]\s*[\"']?)" + _VALUE,
    re.I,
)
_WEAK_PAIR = re.compile(
    r"((?<![A-Za-z0-9_\-])[\"']?(?:token|sig|key|pwd)[\"']?\s*=\s*[\"']?)" + _VALUE, re.I
)
# Cheap pre-check: texts with none of these characters cannot hold a shape above.
_MAYBE = re.compile(r"sk-|AIza|AKIA|gh[pousr]_|xox|hf_|eyJ|earer|asic|://|=|:", re.I)


def scrub(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    if len(text) < 8 or _MAYBE.search(text) is None:
        return text
    text = SECRET_VALUE.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    text = _QUERY_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    text = _PAIR.sub(_pair, text)
    return _WEAK_PAIR.sub(_pair, text)


def _pair(match: re.Match[str]) -> str:
    value = match.group(2)
    if value.isdigit() and len(value) < 8:  # max_tokens=256, key: 3 — numbers, not secrets
        return match.group(0)
    return match.group(1) + REDACTED


def is_secret_key(key: object) -> bool:
    """True when a mapping key names a credential (``api_key``, ``Authorization``…)."""
    if not isinstance(key, str) or not key:
        return False
    words = [w for w in _WORD_SPLIT.split(_CAMEL.sub("_", key).lower()) if w]
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    last = words[-1]
    if last == "token":  # access_token, id_token, token; not max_tokens or token_count
        return True
    if last == "key":  # api_key, x-api-key, key; not primary_key or cache_key
        return len(words) == 1 or words[-2] in _KEY_QUALIFIERS
    return False


_MAX_DEPTH = 8


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` (mappings, sequences, scalars) with credentials replaced.

    Keys that name a secret have their value replaced; strings are scrubbed by shape.
    Pydantic ``SecretStr`` is always redacted. Unknown objects become their type name,
    never their repr (a repr may hold a key).
    """
    if _depth > _MAX_DEPTH:
        return "…"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return scrub(value)
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            out[key] = REDACTED if is_secret_key(key) else redact(v, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v, _depth + 1) for v in value]
    return f"<{type(value).__name__}>"
