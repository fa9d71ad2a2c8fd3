"""Credentials never leave the process: a broker URL such as ``redis://user:secret@host:6379`` is
shown and logged as ``redis://user:***@host:6379``, and any text that might quote it (an exception
from the Redis client, a health detail) has the password replaced too."""
from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str | None) -> str:
    """``url`` with the password of its ``user:password@`` part (or a lone ``token@``) replaced by ***."""
    if not url:
        return url or ""
    try:
        parts = urlsplit(url)
    except ValueError:                        # not parseable as a URL: hide everything before an '@'
        return f"{MASK}@{url.rsplit('@', 1)[1]}" if "@" in url else url
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        userinfo = f"{user}:{MASK}" if user else f":{MASK}"
    else:
        userinfo = MASK                       # redis://TOKEN@host: the single name is the secret
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def secrets_of(url: str | None) -> list[str]:
    """The password of ``url`` as written and percent-decoded (what the Redis client sends)."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    if "@" not in parts.netloc:
        return []
    userinfo = parts.netloc.rsplit("@", 1)[0]
    secret = userinfo.split(":", 1)[1] if ":" in userinfo else userinfo
    return [s for s in {secret, unquote(secret)} if s]


def redact(text: object, url: str | None) -> str:
    """``str(text)`` with ``url`` shown redacted and its password, wherever else it appears, masked."""
    out = str(text)
    if url:
        out = out.replace(url, redact_url(url))
    for secret in sorted(secrets_of(url), key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out
