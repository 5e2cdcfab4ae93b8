"""HTTP plumbing shared by scraping, target discovery and the Alertmanager client.

One place for each job every HTTP client of deucalion does:

- ``read_secret_file``: a password or token file, read the one way, errors naming the setting.
- ``Credentials``: how deucalion proves who it is (basic auth, a bearer token, a token file
  read on every request) and whom it trusts (a CA file, or nobody: ``insecure_skip_verify``).
  ``Credentials.headers()`` and ``Credentials.ssl()`` are what aiohttp gets.
- ``split_credentials``: ``user:password@`` taken out of a URL, so that no URL handed to aiohttp
  or quoted in an error holds a secret.
- ``http_url_problems``: the one check of an http(s) URL a setting gives.
- ``redact_url`` / ``redact_text`` (from ``deucalion._redact``, re-exported here): a URL as logs
  and errors may show it (password and secret query parameters as ``***``).
- ``comma_separated`` / ``split_comma_list``: a list setting written as one comma-separated
  string (an environment variable, a flag).
- ``APIClient``: GET requests to an HTTP API (Kubernetes, Prometheus) over one session, with
  these credentials, a timeout and a size limit, and none of a scrape's headers.

A leaf: it imports nothing of deucalion but its errors, version and ``_redact``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit, urlunsplit

import aiohttp

from deucalion._redact import redact_text, redact_url
from deucalion._version import __version__
from deucalion.errors import CredentialsError, DeucalionError, HTTPError

__all__ = [
    "NO_CREDENTIALS",
    "USER_AGENT",
    "APIClient",
    "Credentials",
    "HTTPError",
    "comma_separated",
    "error_text",
    "http_url_problems",
    "read_secret_file",
    "redact_text",
    "redact_url",
    "split_comma_list",
    "split_credentials",
]

USER_AGENT = f"deucalion/{__version__}"

_HAS_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")


def error_text(exc: BaseException, url: str, *, redact: bool = True) -> str:
    """``Type: message`` of an error met reaching ``url``, with no secret quoted (``redact``
    False: for a caller that takes the secrets out itself, knowing its URL). A connection
    refused or unreachable says so in the system's words, not in asyncio's "Connect call
    failed ('host', port)", and on a plain ``http://`` URL without aiohttp's "ssl:default"
    (no TLS was tried): ``Cannot connect to host 127.0.0.1:9100 [Connection refused]``."""
    text = str(exc)
    if (
        isinstance(exc, aiohttp.ClientConnectorError)
        and type(exc).__str__ is aiohttp.ClientConnectorError.__str__
        # A TLS failure's own words say what went wrong ("wrong version number": https to a
        # plain http port); its errno (an SSLError's 1) would read "Operation not permitted".
        and not isinstance(exc, aiohttp.ClientSSLError)
        and not isinstance(exc.os_error, ssl.SSLError)
    ):
        # A DNS error's errno is negative (a gaierror's): its strerror is the words then.
        errno = exc.os_error.errno
        reason = os.strerror(errno) if errno and errno > 0 else exc.os_error.strerror
        tls = "" if urlsplit(url).scheme.lower() == "http" else f" ssl:{_tls_shown(exc.ssl)}"
        text = f"Cannot connect to host {exc.host}:{exc.port}{tls} [{reason or exc.os_error}]"
    return f"{type(exc).__name__}: {redact_text(text) if redact else text}"


def _tls_shown(option: object) -> str:
    """aiohttp's ``ssl`` option as its errors show it: ``default`` for its own checks."""
    return "default" if option is True else str(option)


@dataclass(frozen=True)
class Credentials:
    """What one HTTP server gets from deucalion to authenticate it, and how it is trusted.

    At most one of ``basic_auth``, ``bearer_token`` and ``bearer_token_file`` is set (the
    settings check that); secrets are left out of the repr.
    """

    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    """``(username, password)`` for HTTP basic authentication."""
    bearer_token: str | None = field(default=None, repr=False)
    """A bearer token sent in the Authorization header."""
    bearer_token_file: str | None = None
    """A file holding the bearer token, read for every request (tokens rotate)."""
    ca_file: str | None = None
    """CA certificates (PEM) to verify the server's certificate with."""
    insecure_skip_verify: bool = False
    """Accept any certificate: the connection is still TLS, but anyone in between can read it."""
    token_file_key: str = field(default="bearer_token_file", compare=False)
    """The setting that names ``bearer_token_file``, for error messages."""
    ca_file_key: str = field(default="tls_config.ca_file", compare=False)
    """The setting that names ``ca_file``, for error messages."""

    def headers(self) -> dict[str, str]:
        """The Authorization header (none without credentials).

        Raises ``CredentialsError`` naming the file when a bearer token file cannot be read;
        the error never contains the secret.
        """
        if self.basic_auth is not None:
            username, password = self.basic_auth
            # Encoded here: aiohttp's BasicAuth helper is deprecated in recent versions.
            encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            return {"Authorization": f"Basic {encoded}"}
        token = self.bearer_token
        if self.bearer_token_file is not None:
            # Read on every request: Kubernetes rotates projected service-account tokens. The
            # file is a few hundred bytes.
            token = read_secret_file(self.bearer_token_file, self.token_file_key)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def ssl(self) -> ssl.SSLContext | bool:
        """What aiohttp's ``ssl=`` gets: ``True`` (the system's CAs) unless configured.

        Raises ``CredentialsError`` naming the CA file when it cannot be loaded.
        """
        if self.ca_file is None and not self.insecure_skip_verify:
            return True
        try:
            return _tls_context(self.ca_file, self.insecure_skip_verify)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise CredentialsError(
                f"cannot load {self.ca_file_key} {self.ca_file}: {reason}; give a PEM file of CA "
                "certificates"
            ) from None


#: No authentication, the system's CAs.
NO_CREDENTIALS = Credentials()


def read_secret_file(path: str | Path, key: str) -> str:
    """The secret in the file ``path`` (a password or token file, which setting ``key`` names),
    without the whitespace around it.

    Raises ``CredentialsError`` naming the setting and the file, never the secret.
    """
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CredentialsError(f"cannot read {key} {path}: {reason}") from None


@lru_cache(maxsize=64)
def _tls_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    # One context per TLS configuration, not per request: building one reads the CA file. The
    # cache is bounded: a configuration names a handful of CA files.
    context = ssl.create_default_context(cafile=ca_file)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def http_url_problems(url: str) -> set[str]:
    """What keeps ``url`` from being an http(s) URL deucalion can use: none for a good one,
    else some of

    - ``"schemeless"``: no ``scheme://`` at all (``host:port``, which most settings complete
      with ``http://`` before checking; one written as it is, as the injector writes its
      Alertmanager URLs into every sidecar, refuses it);
    - ``"scheme"``: not http or https, or no host;
    - ``"port"``: a port that is not a number or out of range;
    - ``"credentials"``: a ``user:password@`` in it;
    - ``"separator"``: an ``@`` after the host, as when a /, ? or # in a password was not
      percent-encoded and ended the host early (the URL would then be shown whole).

    The one URL check of the settings: each caller says which problems it refuses, and how.
    """
    parts = urlsplit(url)
    problems = set()
    if not _HAS_SCHEME.match(url):
        problems.add("schemeless")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.add("scheme")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        problems.add("port")
    if "@" in parts.netloc:
        problems.add("credentials")
    elif "@" in url.partition("://")[2]:
        problems.add("separator")
    return problems


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without the ``user:password@`` it may hold, and that user and password.

    Percent-decoded, as aiohttp decodes credentials it finds in a URL. The host and port stay as
    written (an IPv6 address keeps its brackets).
    """
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), (unquote(user), unquote(password))


def comma_separated(text: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated string (an environment variable's
    value, a flag's)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def split_comma_list(value: object) -> object:
    """A comma-separated string as ``comma_separated`` gives it; anything else as it is, for
    a settings validator to judge."""
    return comma_separated(value) if isinstance(value, str) else value


class APIClient:
    """GET requests to one HTTP API (its base URL), with its credentials, over one session.

    ``user:password@`` in ``base_url`` is sent as basic auth and never shown. Use as
    ``async with``, or call ``close()``; twice is harmless, and a closed client cannot be reopened.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials = NO_CREDENTIALS,
        *,
        timeout: float = 10.0,
        body_size_limit: int = 50 * 10**6,
    ) -> None:
        self.base_url, login = split_credentials(base_url.rstrip("/"))
        if login is not None and credentials.basic_auth is None:
            credentials = replace(credentials, basic_auth=login)
        self.credentials = credentials
        self.name = redact_url(self.base_url)
        """The base URL as logs and errors show it."""
        self.timeout = timeout
        self.body_size_limit = body_size_limit
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __aenter__(self) -> APIClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def url(self, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        """The full URL of ``path`` with ``query``."""
        url = f"{self.base_url}{path}"
        return f"{url}?{urlencode(query)}" if query else url

    async def get_json(self, path: str, query: Sequence[tuple[str, str]] = ()) -> Any:
        """The decoded JSON at ``path``; raises ``HTTPError`` saying why not."""
        body, _ = await self.get(path, query, accept="application/json")
        try:
            return json.loads(body)
        except ValueError as exc:
            raise HTTPError(f"the answer is not JSON: {exc}") from None

    async def get(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        *,
        accept: str = "application/json",
    ) -> tuple[bytes, str]:
        """The body and Content-Type at ``path``.

        Raises ``HTTPError`` saying why not (a status that is not 2xx, a timeout, a body over
        the size limit, a credentials file that cannot be read); its reason never quotes a
        secret. The caller says which request it was.
        """
        if self._closed:
            raise DeucalionError(f"the client of {self.name} is closed; create a new one")
        try:
            headers = {"Accept": accept, **self.credentials.headers()}
            tls = self.credentials.ssl()
        except CredentialsError as exc:
            raise HTTPError(str(exc)) from None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT}, cookie_jar=aiohttp.DummyCookieJar()
            )
        try:
            async with (
                asyncio.timeout(self.timeout),
                self._session.get(self.url(path, query), headers=headers, ssl=tls) as response,
            ):
                if not 200 <= response.status < 300:
                    raise HTTPError(
                        f"HTTP {response.status} {response.reason}",
                        status=response.status,
                        body=await response.content.read(4096),
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_any():
                    size += len(chunk)
                    if size > self.body_size_limit:
                        raise HTTPError(
                            f"answer larger than body_size_limit ({self.body_size_limit} bytes)"
                        )
                    chunks.append(chunk)
                return b"".join(chunks), response.headers.get("Content-Type", "")
        except TimeoutError:
            raise HTTPError(f"timed out after {self.timeout:g}s") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            # ValueError: aiohttp refusing what it was given (a header with a newline, say).
            raise HTTPError(error_text(exc, self.url(path, query))) from None

    async def close(self) -> None:
        """Close the session, if one was opened."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
