"""The cluster's Kubernetes version, asked of the API server the injector runs under.

Native sidecars need Kubernetes 1.29; ``auto`` mode uses them only where the version is known
to be new enough. ``/version`` is readable by every client (the default
``system:public-info-viewer`` role), so the injector needs no RBAC rule for it, only its
service account token and the cluster's CA, mounted at the usual place.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from pathlib import Path

import aiohttp

from deucalion.injector.settings import parse_kubernetes_version

__all__ = ["SERVICE_ACCOUNT_DIR", "fetch_kubernetes_version", "in_cluster_api_url"]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def in_cluster_api_url(environ: dict[str, str] | None = None) -> str | None:
    """The API server's URL from the variables every pod gets, or None outside a cluster."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


def _credentials(
    token_file: Path | None, ca_file: Path | None
) -> tuple[dict[str, str], ssl.SSLContext]:
    headers = {"Accept": "application/json"}
    if token_file is not None and token_file.exists():
        headers["Authorization"] = f"Bearer {token_file.read_text().strip()}"
    context = ssl.create_default_context(
        cafile=str(ca_file) if ca_file is not None and ca_file.exists() else None
    )
    return headers, context


async def fetch_kubernetes_version(
    api_url: str,
    *,
    token_file: Path | None = SERVICE_ACCOUNT_DIR / "token",
    ca_file: Path | None = SERVICE_ACCOUNT_DIR / "ca.crt",
    time_limit: float = 10.0,
) -> tuple[int, int]:
    """GET ``{api_url}/version`` and return (major, minor).

    Raises ``OSError`` (aiohttp's errors are ``OSError``s too) or ``ValueError`` saying what
    went wrong.
    """
    headers, context = await asyncio.to_thread(_credentials, token_file, ca_file)
    client_timeout = aiohttp.ClientTimeout(total=time_limit)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        try:
            async with session.get(
                f"{api_url.rstrip('/')}/version", headers=headers, ssl=context
            ) as response:
                if response.status != 200:
                    raise ValueError(f"{api_url}/version answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise OSError(f"{api_url}/version: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError(f"{api_url}/version is not a JSON object")
    # "minor" is "29+" on some managed clusters; gitVersion ("v1.29.3-gke.1") is the fallback.
    major = str(body.get("major", "")).rstrip("+")
    minor = str(body.get("minor", "")).rstrip("+")
    version = parse_kubernetes_version(f"{major}.{minor}") or parse_kubernetes_version(
        str(body.get("gitVersion", ""))
    )
    if version is None:
        raise ValueError(f"{api_url}/version holds no version: {str(body)[:200]}")
    return version
