"""The ``deucalion injector`` and ``deucalion inject`` commands: a thin layer over the library.

``add_commands`` adds them to the main ``deucalion`` parser; each sets ``func(args) -> int``.
``main`` runs them on their own (``python -m deucalion.injector``).

- ``deucalion injector [serve]``: run the webhook (HTTPS ``/mutate``, ``/healthz``; plain-HTTP
  ``/metrics``).
- ``deucalion injector certs``: make a CA and serving certificate, print the ``caBundle``.
- ``deucalion inject -f MANIFEST``: inject a YAML manifest offline and print it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from deucalion.errors import ConfigError
from deucalion.injector.manifest import ManifestError, inject_manifest
from deucalion.injector.settings import InjectorSettings
from deucalion.injector.webhook import start_injector

__all__ = ["add_commands", "main"]

log = logging.getLogger("deucalion.injector")

_DEFAULT_SERVICE = "deucalion-injector"
_DEFAULT_NAMESPACE = "deucalion-system"


def _add_sidecar_flags(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS keeps unset flags out of args, so environment variables and defaults of
    # InjectorSettings still apply, and a subparser cannot overwrite its parent's values.
    group = parser.add_argument_group("sidecar (also DEUCALION_INJECTOR_* environment variables)")
    group.add_argument(
        "--image", default=argparse.SUPPRESS, help="default sidecar image (deucalion.io/image wins)"
    )
    group.add_argument(
        "--alertmanager-url",
        action="append",
        dest="alertmanager_urls",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="Alertmanager URL given to the sidecars (repeatable)",
    )
    group.add_argument(
        "--alert-name", default=argparse.SUPPRESS, help="DEUCALION_ALERT_NAME of the sidecars"
    )
    group.add_argument(
        "--kubernetes-version",
        default=argparse.SUPPRESS,
        metavar="X.Y",
        help="the cluster's Kubernetes version, for native sidecars (needs 1.29; "
        "`kubectl version` shows it); the webhook asks the API server when unset",
    )


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    _add_sidecar_flags(parser)
    group = parser.add_argument_group("server")
    group.add_argument(
        "--listen", default=argparse.SUPPRESS, metavar="HOST:PORT", help="default 0.0.0.0:8443"
    )
    group.add_argument("--cert", default=argparse.SUPPRESS, help="PEM serving certificate file")
    group.add_argument("--key", default=argparse.SUPPRESS, help="PEM private key file")
    group.add_argument(
        "--metrics-port",
        type=int,
        default=argparse.SUPPRESS,
        help="plain-HTTP port of /metrics and /healthz (default 9090)",
    )


def _settings(args: argparse.Namespace) -> InjectorSettings:
    overrides: dict[str, Any] = {}
    if hasattr(args, "image"):
        overrides.setdefault("sidecar", {})["image"] = args.image
    if hasattr(args, "alertmanager_urls"):
        overrides.setdefault("alertmanager", {})["urls"] = args.alertmanager_urls
    if hasattr(args, "alert_name"):
        overrides.setdefault("alertmanager", {})["alert_name"] = args.alert_name
    if hasattr(args, "kubernetes_version"):
        overrides.setdefault("cluster", {})["kubernetes_version"] = args.kubernetes_version
    if hasattr(args, "listen"):
        host, sep, port = str(args.listen).rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"--listen must be HOST:PORT, not {args.listen!r}")
        overrides.setdefault("server", {}).update(host=host.strip("[]"), port=int(port))
    if hasattr(args, "cert"):
        overrides.setdefault("server", {})["cert_file"] = args.cert
    if hasattr(args, "key"):
        overrides.setdefault("server", {})["key_file"] = args.key
    if hasattr(args, "metrics_port"):
        overrides.setdefault("server", {})["metrics_port"] = args.metrics_port
    return InjectorSettings.load(**overrides)


def _load_settings(args: argparse.Namespace) -> InjectorSettings | None:
    try:
        return _settings(args)
    except (ConfigError, ValidationError, ValueError) as exc:
        print(f"deucalion: invalid injector settings: {exc}", file=sys.stderr)
        return None


async def _serve_until_signalled(settings: InjectorSettings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        async with await start_injector(settings) as server:
            log.info(
                "deucalion injector serving %s/mutate and %s/metrics",
                server.url,
                server.metrics_url,
            )
            await stopping.wait()
            log.info("deucalion injector stopping")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def serve_command(args: argparse.Namespace) -> int:
    """Run the webhook until SIGINT or SIGTERM."""
    settings = _load_settings(args)
    if settings is None:
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve_until_signalled(settings))
    except ConfigError as exc:
        print(f"deucalion injector: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # also ssl.SSLError: a missing or broken certificate or key
        print(f"deucalion injector: cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


def certs_command(args: argparse.Namespace) -> int:
    """Write a CA and a serving certificate; print the base64 caBundle on stdout."""
    try:
        from deucalion.injector.certs import (
            make_certificates,
            service_dns_names,
            write_certificates,
        )
    except ImportError:
        print(
            "deucalion injector certs needs the cryptography package: "
            "pip install 'deucalion[injector]'",
            file=sys.stderr,
        )
        return 1
    names = service_dns_names(args.service, args.namespace) + list(args.dns_name or ())
    try:
        bundle = make_certificates(names, ip_addresses=args.ip or (), days=args.days)
        paths = write_certificates(bundle, args.out_dir)
    except (ValueError, OSError) as exc:
        print(f"deucalion injector certs: {exc}", file=sys.stderr)
        return 1
    print(bundle.ca_bundle)
    print(
        f"wrote {', '.join(str(p) for p in paths.values())} for {', '.join(names)}\n"
        f"next:\n"
        f"  kubectl -n {args.namespace} create secret tls {args.service}-tls "
        f"--cert={paths['tls.crt']} --key={paths['tls.key']}\n"
        f"  kubectl patch mutatingwebhookconfiguration {args.service} --type=json "
        f'-p \'[{{"op": "add", "path": "/webhooks/0/clientConfig/caBundle", '
        f'"value": "\'"$CA_BUNDLE"\'"}}]\'\n'
        f"  (CA_BUNDLE is the line printed on stdout)",
        file=sys.stderr,
    )
    return 0


def inject_command(args: argparse.Namespace) -> int:
    """Inject the manifest named by ``-f`` (``-`` for stdin) and print it."""
    settings = _load_settings(args)
    if settings is None:
        return 2
    try:
        if args.filename == "-":
            text = sys.stdin.read()
        else:
            with open(args.filename, encoding="utf-8") as f:
                text = f.read()
        result = inject_manifest(text, settings)
    except OSError as exc:
        print(f"deucalion inject: cannot read {args.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    except ManifestError as exc:
        print(f"deucalion inject: {args.filename}: {exc}", file=sys.stderr)
        return 1
    if result.without_image:
        # Printing the manifest back unchanged would look like success, and a pipe into
        # `kubectl apply` would deploy it without the sidecar.
        print(
            f"deucalion inject: {args.filename}: no sidecar image for "
            f"{', '.join(result.without_image)}: pass --image "
            "REGISTRY/deucalion:VERSION (or set DEUCALION_INJECTOR_SIDECAR__IMAGE, or give the "
            f"pods the annotation {settings.annotations.image}); nothing was written",
            file=sys.stderr,
        )
        return 1
    if result.invalid:
        # As above: a pod that asked for the sidecar must not be deployed without it for a typo.
        print(
            f"deucalion inject: {args.filename}: {'; '.join(result.invalid)}; nothing was written",
            file=sys.stderr,
        )
        return 1
    if args.output in (None, "-"):
        sys.stdout.write(result.text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(result.text)
    if not args.quiet:
        for message in result.messages:
            print(message, file=sys.stderr)
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``injector`` (with ``serve``, the default, and ``certs``) and ``inject``."""
    injector = subparsers.add_parser(
        "injector",
        help="run the Kubernetes sidecar injector webhook, or make its certificates",
        description="Mutating admission webhook that adds the deucalion sidecar to opted-in pods.",
    )
    _add_serve_flags(injector)
    injector.set_defaults(func=serve_command)
    commands = injector.add_subparsers(dest="injector_command", metavar="{serve,certs}")
    serve = commands.add_parser("serve", help="serve /mutate and /healthz over HTTPS (default)")
    _add_serve_flags(serve)
    serve.set_defaults(func=serve_command)

    certs = commands.add_parser(
        "certs",
        help="make a self-signed CA and serving certificate (without cert-manager)",
        description="Write ca.crt, ca.key, tls.crt, tls.key and print the base64 caBundle.",
    )
    certs.add_argument("--service", default=_DEFAULT_SERVICE, help="the injector's Service")
    certs.add_argument("--namespace", default=_DEFAULT_NAMESPACE, help="the Service's namespace")
    certs.add_argument("--dns-name", action="append", help="another DNS name (repeatable)")
    certs.add_argument("--ip", action="append", help="an IP address to include (repeatable)")
    certs.add_argument("--days", type=int, default=365, help="validity of the serving certificate")
    certs.add_argument("--out-dir", default="deucalion-injector-certs", help="where to write")
    certs.set_defaults(func=certs_command)

    inject = subparsers.add_parser(
        "inject",
        help="add the deucalion sidecar to the pods and workloads of a YAML manifest",
        description="Apply the injector's mutation offline, like istioctl kube-inject. "
        "Comments in the manifest are not kept.",
    )
    inject.add_argument("-f", "--filename", required=True, help="manifest file, - for stdin")
    inject.add_argument("-o", "--output", help="write here instead of stdout")
    inject.add_argument("-q", "--quiet", action="store_true", help="no per-object report")
    _add_sidecar_flags(inject)
    inject.set_defaults(func=inject_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``injector`` or ``inject`` as the ``deucalion`` command would."""
    parser = argparse.ArgumentParser(prog="deucalion")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    func: Any = args.func
    return int(func(args))
