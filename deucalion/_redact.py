"""Secrets taken out of what deucalion shows: URLs and texts as logs, errors and alerts quote
them.

A leaf of the standard library only (no aiohttp), so that worker processes (the presets' and
the ready observers' alert texts name their target) redact without loading the HTTP stack.
"""

from __future__ import annotations

import re

__all__ = ["redact_text", "redact_url"]

# Query parameters whose values are secrets (as client libraries and APIs name them).
_SECRET_PARAMS = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.-]*[_.-])?"
    r"(?:token|secret|password|passwd|passphrase|pass|pwd|key|apikey|signature|sig|jwt|bearer"
    r"|auth|authorization|credentials?)=)"
    r"[^&;#\s'\"]*"
)
_SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//")
# A password in the user information of a URL quoted anywhere in a text (a series key that
# names its target): ``scheme://user:password@``.
_PASSWORDS = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/@:'\"]*:)[^\s/'\"]*@")


def redact_url(url: str) -> str:
    """``url`` as logs and errors may show it: a password and secret query parameters
    (``?token=``, ``?password=``, ``?api_key=``, ...) as ``***``; the user name stays.

    ``http://user:pass@host:9093/?token=x`` shows as ``http://user:***@host:9093/?token=***``,
    and so does a URL written without its scheme. Never raises, whatever ``url`` holds.
    """
    # By hand, not with urlsplit: that raises on some malformed URLs (an unclosed [) and drops
    # tabs and newlines. The user information ends at the last @ before the path: a ? or # in
    # a password that was not percent-encoded is hidden with it, not shown.
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    end = url.find("/", start)
    end = len(url) if end < 0 else end
    userinfo, at, host = url[start:end].rpartition("@")
    if at and ":" in userinfo:
        url = f"{url[:start]}{userinfo.partition(':')[0]}:***@{host}{url[end:]}"
    return redact_text(url)


def redact_text(text: str) -> str:
    """``text`` (an error message, say) with the passwords and the values of secret query
    parameters of the URLs it quotes as ``***`` (``http://user:***@host/?token=***``)."""
    return _SECRET_PARAMS.sub(r"\1***", _PASSWORDS.sub(r"\1***@", text))
