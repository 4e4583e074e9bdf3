"""One place that decides what is a secret and hides it before anything is stored or printed.

* An option is secret by its name: a whole word `key`, `api_key`, `token`, `secret`,
  `password`, `auth`, ... at the end of the name (`hf_token` is, `token_field` and `max_tokens`
  are not).
* A URL carries secrets in its user-info (`user:password@`) and in query parameters with such
  names (`?api-key=...`, `&sig=...`): `redact_value` hides those and keeps the rest.
* `public_url` is a base URL with neither user-info nor query, safe to keep in a fingerprint.
* `Scrubber` removes known secret values from free text (a server's error message), in every
  form they can appear in: as given, stripped of whitespace, JSON- or repr-escaped, URL-quoted.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Iterable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:api[_-]?key|key|token|access[_-]?token|secret|password|passwd|pwd|auth"
    r"|authorization|credentials?|signature|sig)$", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    """Whether an option or query parameter of this name holds a credential."""
    return bool(_SECRET_NAME.search(name))


def redact_value(value: str) -> str:
    """`value` with the secrets a URL can carry hidden; other values unchanged."""
    if not _URL.match(value):
        return value
    parts = urlsplit(value)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = [(name, REDACTED if is_secret_name(name) else item)
             for name, item in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="<>"),
                       parts.fragment))


def public_url(url: str) -> str:
    """A base URL without user:password or query string, so it is safe to store."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host   # IPv6 literal
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_secrets(value: str) -> list[str]:
    """The secret parts of a URL: user-info password and user, and the Basic-auth header value
    an HTTP client makes of them (base64 of "user:password"), and secret query values."""
    if not _URL.match(value):
        return []
    parts = urlsplit(value)
    found = [item for item in (parts.password, parts.username) if item]
    if parts.username is not None:
        pair = f"{parts.username}:{parts.password or ''}"
        found.append(base64.b64encode(pair.encode()).decode("ascii"))
    found += [item for name, item in parse_qsl(parts.query) if is_secret_name(name) and item]
    return found


class Scrubber:
    """Removes known secret values from text, in every form a message can carry them."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms: set[str] = set()
        for secret in filter(None, secrets):
            for base in {secret, secret.strip()}:
                if len(base) < 4:       # too short to search for without hiding other words
                    continue
                forms |= {base, json.dumps(base)[1:-1], repr(base)[1:-1], quote(base, safe="")}
        self.forms = sorted(forms, key=len, reverse=True)   # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, REDACTED)
        return text
