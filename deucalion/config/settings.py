"""The schema of deucalion's settings: pydantic models, one section per concern.

``Settings`` is the whole; ``deucalion.config.loading.load_settings`` reads it from files, the
environment and arguments. Value types shared by the sections (durations, sizes, target URLs,
label names) are here too. Unknown keys are errors everywhere, so a typo never goes unnoticed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from deucalion._http import (
    Credentials,
    http_url_problems,
    read_secret_file,
    redact_url,
    split_comma_list,
)
from deucalion.history.labels import LABEL_NAME

__all__ = [
    "AlertmanagerSettings",
    "ClientOptions",
    "FileSDSettings",
    "KubernetesSettings",
    "ObserverSettings",
    "PresetSettings",
    "PrometheusSettings",
    "ScrapeOptions",
    "Settings",
    "ShardSettings",
    "TargetSettings",
    "TelemetrySettings",
    "check_labels",
    "hide_password",
    "normalize_target_url",
    "parse_duration",
    "parse_size",
]

# Prometheus's units, each number a decimal as Go's time.ParseDuration allows (0.5s, 1.5h).
# ASCII digits only, as Prometheus reads them: Python's \d and float() would also take
# fullwidth or Arabic-Indic digits, which no other tool reading the same file accepts.
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_DURATION = re.compile(
    rf"(?:(?P<y>{_NUMBER})y)?(?:(?P<w>{_NUMBER})w)?(?:(?P<d>{_NUMBER})d)?(?:(?P<h>{_NUMBER})h)?"
    rf"(?:(?P<m>{_NUMBER})m(?!s))?(?:(?P<s>{_NUMBER})s)?(?:(?P<ms>{_NUMBER})ms)?"
)
# A number of seconds as float() reads it, less what only Python writes: no "1_000".
_SECONDS = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:inf|infinity|nan)",
    re.IGNORECASE,
)
_DURATION_UNITS = {
    "y": 365 * 86400,
    "w": 7 * 86400,
    "d": 86400,
    "h": 3600,
    "m": 60,
    "s": 1,
    "ms": 0.001,
}
#: The shortest and longest durations that make sense for any setting (0 aside): shorter ones
#: are typos (1e-300) that would spin a timer, longer ones overflow the event loop's clock.
MIN_DURATION = 0.001
MAX_DURATION = 366 * 86400.0
_SIZE = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[KMGT]?i?B)?", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//")


def parse_duration(value: object) -> float:
    """Seconds from a Prometheus duration (``500ms``, ``15s``, ``1m30s``) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15s, 500ms or 1m, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        foreign = next((c for c in text if not c.isascii()), None)
        if foreign is not None:
            raise ValueError(
                f"{value!r} is not a duration: it has the character {foreign!r} "
                f"({unicodedata.name(foreign, f'U+{ord(foreign):04X}')}); write the digits "
                "and units in ASCII (500ms, 15s, 1m, 1h30m)"
            )
        if _SECONDS.fullmatch(text):
            seconds = float(text)
        else:
            match = _DURATION.fullmatch(text)
            if not text or match is None:
                raise ValueError(
                    f"{value!r} is not a duration: write it as Prometheus does (500ms, 15s, 1m, "
                    "1h30m) or as a number of seconds"
                ) from None
            seconds = sum(float(n) * _DURATION_UNITS[u] for u, n in match.groupdict().items() if n)
    else:
        raise ValueError(f"expected a duration such as 15s, 500ms or 1m, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"a duration must be a finite number of seconds, not {value!r}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    if seconds and not MIN_DURATION <= seconds <= MAX_DURATION:
        raise ValueError(f"{value!r} is out of range: a duration is 0 or between 1ms and 366d")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from a number or a size such as ``50MB`` or ``10MiB``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(str(value).strip())
    if match is None:
        raise ValueError(f"{value!r} is not a size: write a number of bytes or e.g. 50MB, 10MiB")
    unit = (match["unit"] or "").upper()
    return int(float(match["n"]) * _SIZE_UNITS[unit])


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
ByteSize = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]


def normalize_target_url(value: str) -> str:
    """A full scrape URL from either a URL or Prometheus's ``host:port`` form."""
    value = value.strip()
    if "://" not in value:
        value = f"http://{value}"
    problems = http_url_problems(value)
    if "credentials" in problems:
        # Not quoted back: the URL holds a secret.
        raise ValueError(
            "a target URL holds credentials (user:password@), which would show in logs and "
            "metric labels: give them as basic_auth: {username, password} instead"
        )
    parts = urlsplit(value)
    numeric_host = (parts.hostname or "").isdigit()
    if "separator" in problems and (numeric_host or problems & {"scheme", "port"}):
        # Not quoted back: an @ after a host that is no host is a password whose /, ? or #
        # ended it early ("http://u:p/w@h:9100"), and redact_url cannot tell it from the rest.
        raise ValueError(
            "a target URL holds an @ after a host that is not one, as a user:password@ whose "
            "/, ? or # is not percent-encoded: give them as basic_auth: {username, password}"
        )
    if "scheme" in problems:
        raise ValueError(
            f"{redact_url(value)!r} is not a scrape URL: write http(s)://host:port/path or "
            "host:port"
        )
    if "port" in problems:
        raise ValueError(
            f"{redact_url(value)!r} has an invalid port: write http(s)://host:port/path"
        )
    if numeric_host:
        # A port alone (`9100`) reads as host 9100, which no client can reach: say so now,
        # not as a target down at every scrape.
        raise ValueError(
            f"{redact_url(value)!r} has a number for its host: write host:port "
            f"(localhost:{parts.hostname}) or http(s)://host:port/path"
        )
    if not parts.path:
        value = value.rstrip("/") + "/metrics" if not parts.query else value
    return value


#: The name ``redact_url`` had here before it moved to ``deucalion._http``.
hide_password = redact_url


def _hide_passwords(value: object) -> object:
    """``redact_url`` of a URL or of each URL in a list; anything else as it is."""
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, list):
        return [redact_url(v) if isinstance(v, str) else v for v in value]
    return value


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    for name in labels:
        if not LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"{name!r} is not a valid label name: use letters, digits and underscores, "
                "not starting with a digit or __"
            )
    return dict(labels)


class Section(BaseModel):
    """A part of the settings: unknown keys are errors, so a typo never goes unnoticed."""

    # defer_build: a section's validator and serializer are built when the section is first
    # used on its own, not at import. The application only validates Settings, whose validator
    # holds every section; building one for each section as well cost it memory (figure in
    # benchmarks/results.md, "Figures behind design choices").
    # hide_input_in_errors: a section validated on its own (AlertmanagerSettings(urls=[...]))
    # raises pydantic's own error, which would quote the input, passwords and all.
    model_config = ConfigDict(
        extra="forbid", frozen=True, defer_build=True, hide_input_in_errors=True
    )

    _urls_with_passwords: ClassVar[frozenset[str]] = frozenset()
    """Fields holding URLs (or lists of them) that may carry a password."""

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Those URLs keep their password, for requests; repr and str, which end up in logs,
        # hide it.
        for name, value in super().__repr_args__():
            yield name, _hide_passwords(value) if name in self._urls_with_passwords else value


class BasicAuth(Section):
    """HTTP basic authentication: a username and a password (inline or from a file)."""

    username: str
    """The user name."""
    password: SecretStr | None = None
    """The password; never logged."""
    password_file: str | None = None
    """A file holding the password (read when the targets are built)."""

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        return self


class TLSConfig(Section):
    """How the server's certificate is checked."""

    ca_file: str | None = None
    """A PEM file of CA certificates to trust instead of the system's."""
    insecure_skip_verify: bool = False
    """Accept any certificate (testing only: anyone in between can read and change the data)."""


class ClientOptions(Section):
    """Credentials and TLS for talking to an HTTP server."""

    basic_auth: BasicAuth | None = None
    """Basic authentication (username, password or password_file)."""
    bearer_token: SecretStr | None = None
    """A bearer token sent as ``Authorization: Bearer ...``; never logged."""
    bearer_token_file: str | None = None
    """A file holding the bearer token, re-read on every request (tokens rotate)."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """CA file and certificate verification."""

    @model_validator(mode="after")
    def _one_credential(self) -> ClientOptions:
        given = [
            name
            for name in ("basic_auth", "bearer_token", "bearer_token_file")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"set only one of basic_auth, bearer_token, bearer_token_file "
                f"(got {', '.join(given)})"
            )
        return self

    def credentials(self) -> Credentials:
        """These options as the credentials of an HTTP client.

        A ``password_file`` is read now (a ``ConfigError`` names it when it cannot be); a
        ``bearer_token_file`` is read for every request.
        """
        basic_auth = None
        if self.basic_auth is not None:
            auth = self.basic_auth
            if auth.password_file is not None:
                password = read_secret_file(auth.password_file, "basic_auth.password_file")
            else:
                password = auth.password.get_secret_value() if auth.password else ""
            basic_auth = (auth.username, password)
        return Credentials(
            basic_auth=basic_auth,
            bearer_token=self.bearer_token.get_secret_value() if self.bearer_token else None,
            bearer_token_file=self.bearer_token_file,
            ca_file=self.tls_config.ca_file,
            insecure_skip_verify=self.tls_config.insecure_skip_verify,
        )


class ScrapeOptions(ClientOptions):
    """How the targets of one group are scraped; any option left unset uses the global one."""

    scheme: Literal["http", "https"] = "http"
    """The scheme of targets written as host:port."""
    scrape_timeout: PositiveDuration | None = None
    """How long one scrape of these targets may take (default: the global scrape_timeout)."""
    scrape_interval: None = None
    """Not supported per group: deucalion runs one fixed-rate cycle for all targets."""

    @field_validator("scrape_interval", mode="before")
    @classmethod
    def _no_interval(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                "a per-group scrape_interval is not supported: every target is scraped in the "
                "same fixed-rate cycle; set the top-level scrape_interval instead"
            )
        return None


class TargetSettings(ScrapeOptions):
    """One scrape target as configured."""

    url: str
    """The scrape URL, or host:port (then the scheme and /metrics are implied)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to this target's alerts and scores (e.g. job, team)."""

    @model_validator(mode="before")
    @classmethod
    def _apply_scheme(cls, value: object) -> object:
        # host:port takes the group's scheme, so normalize_target_url sees a full URL.
        if isinstance(value, Mapping) and isinstance(value.get("url"), str):
            url = value["url"].strip()
            scheme = value.get("scheme") or "http"
            if "://" not in url and scheme in ("http", "https"):
                return {**value, "url": f"{scheme}://{url}"}
        return value

    _url = field_validator("url")(classmethod(lambda cls, v: normalize_target_url(v)))
    _labels = field_validator("labels")(classmethod(lambda cls, v: check_labels(v)))


_GROUP_KEYS = {"targets", "labels"} | set(ScrapeOptions.model_fields)


def _expand_targets(value: object) -> object:
    """Accept URLs, ``{url, labels}`` objects and Prometheus-style ``{targets, labels}`` groups.

    A group's scrape options (scheme, scrape_timeout, basic_auth, ...) apply to each of its
    targets.
    """
    value = split_comma_list(value)
    if not isinstance(value, list):
        return value
    expanded: list[object] = []
    for item in value:
        if isinstance(item, str):
            expanded.append({"url": item})
        elif isinstance(item, Mapping) and "targets" in item and "url" not in item:
            group_targets = item["targets"]
            if isinstance(group_targets, str):
                group_targets = [group_targets]
            if set(item) - _GROUP_KEYS and isinstance(group_targets, list) and group_targets:
                # Once, not per target: validation names the unknown key a single time.
                expanded.append(
                    {**{k: v for k, v in item.items() if k != "targets"}, "url": group_targets[0]}
                )
                continue
            options = {k: v for k, v in item.items() if k != "targets"}
            options["labels"] = item.get("labels") or {}
            expanded.extend({**options, "url": url} for url in group_targets or [])
        else:
            expanded.append(item)
    return expanded


class AlertmanagerSettings(Section):
    """Where and how alerts are sent."""

    # Described by their docstrings: the injector's --help and schema show this section too.
    model_config = ConfigDict(use_attribute_docstrings=True)

    urls: list[str] = Field(default_factory=list)
    """Alertmanager base URLs (an HA group: every alert goes to each one)."""
    alert_name: str = "DeucalionAnomaly"
    """The ``alertname`` label of every alert deucalion sends."""
    external_labels: dict[str, str] = Field(default_factory=dict)
    """Labels added to every alert."""
    resend_interval: PositiveDuration = 60.0
    """How often a firing alert is sent again."""
    timeout: PositiveDuration = 10.0
    """Timeout of one request to an Alertmanager."""
    queue_size: int = Field(default=10_000, gt=0)
    """Alerts kept per Alertmanager while it is unreachable; the oldest are dropped past this."""
    basic_auth_username: str | None = None
    """User name for HTTP basic authentication to the Alertmanagers."""
    basic_auth_password: SecretStr | None = None
    """Password for HTTP basic authentication (never logged)."""
    bearer_token: SecretStr | None = None
    """Bearer token sent as ``Authorization: Bearer`` (never logged)."""
    bearer_token_file: Path | None = None
    """File holding the bearer token, read again for every request so rotation works."""
    tls_ca_file: Path | None = None
    """CA certificate(s) that sign the Alertmanagers' TLS certificates."""
    tls_insecure_skip_verify: bool = False
    """Do not verify the Alertmanagers' TLS certificates (testing only)."""

    _split_urls = field_validator("urls", mode="before")(
        classmethod(lambda cls, v: split_comma_list(v))
    )

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        checked = []
        for url in value:
            url = url if "://" in url else f"http://{url}"
            problems = http_url_problems(url)
            if "separator" in problems:
                # A /, ? or # in the password ended the host early: the URL would be read as
                # host "alice", the rest as a path, and shown whole in logs and metric labels.
                # Not quoted back, since the password cannot be told apart from the rest.
                raise ValueError(
                    "an Alertmanager URL holds a user and password whose /, ? or # "
                    "is not percent-encoded (%2F, %3F, %23): encode them, or give "
                    "them as basic_auth_username and basic_auth_password"
                )
            if "scheme" in problems:
                raise ValueError(
                    f"{redact_url(url)!r} is not an Alertmanager URL: write http(s)://host:port"
                )
            if "port" in problems:
                raise ValueError(
                    f"{redact_url(url)!r} has an invalid port: write http(s)://host:port"
                )
            checked.append(url.rstrip("/"))
        return checked

    _urls_with_passwords = frozenset({"urls"})

    @field_serializer("urls", when_used="json")
    def _dump_urls(self, urls: list[str]) -> list[str]:
        # As SecretStr does: JSON (what gets logged or shown) hides the password; a Python
        # dump keeps it, since load_settings validates it again.
        return [redact_url(url) for url in urls]

    _labels = field_validator("external_labels")(classmethod(lambda cls, v: check_labels(v)))

    @model_validator(mode="after")
    def _check_auth(self) -> AlertmanagerSettings:
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError("set bearer_token or bearer_token_file, not both")
        bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if bearer and self.basic_auth_username is not None:
            raise ValueError("set basic auth or a bearer token, not both")
        if self.basic_auth_password is not None and self.basic_auth_username is None:
            raise ValueError("basic_auth_password is set without basic_auth_username")
        if (bearer or self.basic_auth_username is not None) and any(
            "@" in urlsplit(url).netloc for url in self.urls
        ):
            # aiohttp refuses a request with both, so every alert would wait forever.
            raise ValueError(
                "a URL holds credentials (user:password@) and basic auth or a "
                "bearer token is set too: give the credentials one way"
            )
        return self

    @property
    def first_host_port(self) -> tuple[str, int] | None:
        """Host and port of the first URL, for the original framework's two variables."""
        if not self.urls:
            return None
        parts = urlsplit(self.urls[0])
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.hostname or "", port

    def credentials(self) -> Credentials:
        """The credentials every Alertmanager is sent (a user and password in a URL are that
        Alertmanager's own: ``deucalion._http.split_credentials``)."""
        basic_auth = None
        if self.basic_auth_username is not None:
            password = (
                self.basic_auth_password.get_secret_value()
                if self.basic_auth_password is not None
                else ""
            )
            basic_auth = (self.basic_auth_username, password)
        return Credentials(
            basic_auth=basic_auth,
            bearer_token=(
                self.bearer_token.get_secret_value() if self.bearer_token is not None else None
            ),
            bearer_token_file=(
                str(self.bearer_token_file) if self.bearer_token_file is not None else None
            ),
            ca_file=str(self.tls_ca_file) if self.tls_ca_file is not None else None,
            insecure_skip_verify=self.tls_insecure_skip_verify,
            token_file_key="alertmanager.bearer_token_file",
            ca_file_key="alertmanager.tls_ca_file",
        )


class TelemetrySettings(Section):
    """deucalion's own HTTP server: /metrics, /healthz, /readyz, /alerts."""

    enabled: bool = True
    """Serve deucalion's own metrics and health endpoints."""
    listen: str = "127.0.0.1:9464"
    """host:port to listen on (port 0 picks a free one)."""

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:9464)")
        return value


_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})


def _enable_section(value: object) -> object:
    """``section: true`` enables a section with its defaults, ``false`` leaves it out; so do
    the words of an environment variable (``DEUCALION_KUBERNETES=true``)."""
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        value = value.strip().lower() in _TRUE_WORDS
    if value is True:
        return {}
    if value is False:
        return None
    return value


class FileSDSettings(ScrapeOptions):
    """Targets from files in Prometheus's file_sd format (JSON or YAML)."""

    files: list[str] = Field(min_length=1)
    """Paths or globs (``/etc/deucalion/targets/*.yaml``) of files listing target groups."""
    refresh_interval: PositiveDuration = 300.0
    """How often every file is read again; a file whose mtime changed is read in the next cycle."""

    _split_files = field_validator("files", mode="before")(
        classmethod(lambda cls, v: split_comma_list(v))
    )


class KubernetesSettings(ScrapeOptions):
    """The sidecar's own pod: its ``prometheus.io/*`` annotations say where its metrics are."""

    annotations_file: str = "/etc/deucalion/podinfo/annotations"
    """The Downward API file of the pod's annotations; when it is absent the API is asked."""
    labels_file: str = "/etc/deucalion/podinfo/labels"
    """The Downward API file of the pod's labels (optional; by default beside an
    ``annotations_file`` given elsewhere, named ``labels``)."""
    service_account_dir: str = "/var/run/secrets/kubernetes.io/serviceaccount"
    """Where the service account's token, ca.crt and namespace are mounted."""
    api_url: str | None = None
    """The API server (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)."""
    pod_name: str | None = None
    """The pod's name (default: $POD_NAME, else the hostname)."""
    namespace: str | None = None
    """The pod's namespace (default: $POD_NAMESPACE, else the service account's namespace)."""
    refresh_interval: PositiveDuration = 60.0
    """How often the API is asked again (the annotations file is read every cycle)."""
    ports: dict[str, Annotated[int, Field(gt=0, lt=65536)]] = Field(default_factory=dict)
    """The pod's named container ports (``{http: 8080}``), for a ``prometheus.io/port`` that
    names one: the injector sets them (``DEUCALION_KUBERNETES__PORTS``); read from the API,
    the pod's own are used."""

    @model_validator(mode="before")
    @classmethod
    def _labels_beside_the_annotations(cls, data: Any) -> Any:
        # The Downward API mounts both files in one volume: an annotations file moved (a
        # local trial, another mount path) without its labels file had its pod's labels
        # read from the default place, silently none.
        if isinstance(data, dict) and data.get("annotations_file") and "labels_file" not in data:
            data = {
                **data,
                "labels_file": str(Path(str(data["annotations_file"])).with_name("labels")),
            }
        return data

    @field_validator("api_url")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        # Up to the first /, not urlsplit's netloc: a # in a password would end that early.
        if value is not None and "@" in value.partition("://")[2].partition("/")[0]:
            # Not quoted back: the URL holds a secret. aiohttp would also send it in place of
            # the token, and the URL is quoted in errors.
            raise ValueError(
                "api_url holds credentials (user:password@): the API is asked "
                "with the pod's service-account token; remove them"
            )
        return value


class PrometheusSettings(ClientOptions):
    """Federated mode: targets and their samples come from a Prometheus server, not scrapes."""

    url: str
    """The Prometheus server's base URL, e.g. http://prometheus:9090 (a password in it is sent,
    never shown)."""
    jobs: list[str] = Field(default_factory=list)
    """Only targets of these jobs (default: every active target)."""
    match_labels: dict[str, str] = Field(default_factory=dict)
    """Only targets whose labels have these values (e.g. {namespace: shop})."""
    timeout: PositiveDuration = 10.0
    """Timeout of one request to Prometheus."""

    _urls_with_passwords = frozenset({"url"})

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        url = value if "://" in value else f"http://{value}"
        problems = http_url_problems(url)
        if "scheme" in problems:
            raise ValueError(
                f"{redact_url(url)!r} is not a Prometheus URL: write http(s)://host:port"
            )
        if "port" in problems:
            # A /, ? or # in a password ends the host early: what follows reads as the port.
            raise ValueError(
                f"{redact_url(url)!r} has an invalid port (a password holding "
                "/, ? or # must be percent-encoded)"
            )
        return url.rstrip("/")

    @field_serializer("url", when_used="json")
    def _dump_url(self, url: str) -> str:
        # As for alertmanager.urls: JSON hides the password, a Python dump keeps it.
        return redact_url(url)

    @model_validator(mode="after")
    def _one_login(self) -> PrometheusSettings:
        if "@" in urlsplit(self.url).netloc and (
            self.basic_auth is not None
            or self.bearer_token is not None
            or self.bearer_token_file is not None
        ):
            raise ValueError(
                "url holds credentials (user:password@) and basic_auth or a bearer "
                "token is set too: give the credentials one way"
            )
        return self

    _split_jobs = field_validator("jobs", mode="before")(
        classmethod(lambda cls, v: split_comma_list(v))
    )


class ShardSettings(Section):
    """One replica's share of the targets when several replicas split them (central modes).

    A target belongs to the replica whose ``index`` equals the hash of its URL modulo ``count``,
    the hash of Prometheus's ``hashmod`` relabelling, so the same target always lands on the
    same replica, and so do its observers' states.
    """

    count: int = Field(default=1, ge=1)
    """How many replicas share the targets."""
    index: int | None = Field(default=None, ge=0)
    """This replica's number, 0 to count-1 (default: the ordinal that ends the hostname of a
    StatefulSet's pod, ``deucalion-2`` -> 2)."""

    @model_validator(mode="after")
    def _index_below_count(self) -> ShardSettings:
        if self.index is not None and self.index >= self.count:
            raise ValueError(
                f"shard.index ({self.index}) must be below shard.count "
                f"({self.count}): replicas are numbered from 0"
            )
        return self


class ObserverSettings(Section):
    """An observer started by ``deucalion run``, keyed by its import path."""

    desired_metrics: Annotated[list[str], Field(min_length=1)] | None = None
    """The metric names passed to the observer's ``desired_metrics`` argument; left out, the
    class's own default for that argument (an entry for a class without one is refused when
    the observer is built, naming the entry)."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments of the observer's constructor."""


def preset_shorthand(value: object) -> object:
    """``preset: NAME`` is ``preset: {name: NAME}``: the preset with its defaults."""
    return {"name": value} if isinstance(value, str) else value


def _preset_section(value: object) -> object:
    """``preset:`` as a section; anything but a name or a mapping is refused saying what the
    key takes (pydantic's "a valid dictionary or instance of PresetSettings" did not)."""
    value = preset_shorthand(value)
    if value is None or isinstance(value, Mapping | BaseModel):
        return value
    raise ValueError(
        "give a preset's name (node-exporter, http-service; `deucalion presets list`) or "
        f"{{name: NAME, budget: X}}, not {value!r}"
    )


def unknown_preset(name: object, known: Collection[str]) -> str:
    """What to say of a preset name that is none of ``known``: the closest one, and the list."""
    import difflib  # only for a typo, not on every start

    close = difflib.get_close_matches(str(name).strip().lower(), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return (
        f"unknown preset {name!r}: {hint}choose one of {', '.join(known)} (deucalion presets list)"
    )


class PresetSettings(Section):
    """A preset ``deucalion run`` runs besides the observers, and how it alerts."""

    name: str | None = None
    """The preset: ``node-exporter``, ``http-service`` (``deucalion presets list``); left
    out, the section sets the budget of the preset named by ``--preset`` (the pod annotation
    ``deucalion.io/preset`` runs ``deucalion run --preset NAME``)."""
    budget: float = 1.0
    """False alerts it may raise per target per 10,000 cycles of ordinary load: higher alerts
    on smaller moves, lower on larger ones (its detector's threshold is ``3 - log10(budget)``)."""

    @field_validator("budget", mode="before")
    @classmethod
    def _check_budget(cls, value: object) -> object:
        number = value
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = value
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not math.isfinite(number)
            or number <= 0
            # The preset's detector gets ten times it per series, and a detector's budget is
            # below 10,000 per 10,000 points: a budget of 1,000 or more would alert on noise.
            or number >= 1000
        ):
            raise ValueError(
                f"the budget must be a positive number below 1,000 (false alerts per target "
                f"per 10,000 cycles; default 1), not {value!r}"
            )
        return float(number)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        # The presets are a stage the configuration does not import: a command that wants
        # the name checked with every other problem (check-config) passes their names in the
        # validation context; others check it where they pick the preset (--preset wins).
        known = (info.context or {}).get("presets")
        if value is not None and known is not None and value not in known:
            raise ValueError(unknown_preset(value, known))
        return value


class Settings(Section):
    """Everything deucalion can be configured with."""

    scrape_interval: PositiveDuration = 15.0
    """Time between the starts of two cycles (scrape, then one new_data call per observer)."""
    scrape_timeout: PositiveDuration | None = None
    """How long one target may take; at most scrape_interval (default: 10s or the interval)."""
    targets: Annotated[list[TargetSettings], BeforeValidator(_expand_targets)] = Field(
        default_factory=list
    )
    """Targets to scrape: URLs, {url, labels} objects or {targets: [...], labels} groups."""
    file_sd: FileSDSettings | None = None
    """Targets from Prometheus file_sd files, re-read when they change."""
    kubernetes: Annotated[KubernetesSettings | None, BeforeValidator(_enable_section)] = None
    """The pod's own prometheus.io annotations (set to true or a mapping to enable)."""
    prometheus: PrometheusSettings | None = None
    """Federated mode: targets and samples from a Prometheus server instead of scraping."""
    observers: dict[str, ObserverSettings] = Field(default_factory=dict)
    """Observers for ``deucalion run``: ``module:Class`` -> {desired_metrics, kwargs}."""
    preset: Annotated[PresetSettings | None, BeforeValidator(_preset_section)] = None
    """A preset ``deucalion run`` runs besides the observers: ``preset: NAME`` (``node-exporter``,
    ``http-service``), or ``preset: {name: NAME, budget: 3}`` with its false-alert budget;
    ready signals, alerts, rules and dashboards (``deucalion presets``)."""
    scrape_compression: Literal["auto", "gzip", "none"] = "auto"
    """Ask targets for gzip: ``auto`` does except on loopback, where compressing only costs
    the watched service CPU."""
    body_size_limit: ByteSize = 50 * 10**6
    """Largest response body accepted from a target (after decompression)."""
    observer_timeout: PositiveDuration | None = None
    """Longest a new_data call may run before its worker is replaced (default: no limit)."""
    checkpoint_interval: PositiveDuration | None = None
    """How often each worker pickles its observer between calls, so that a replaced worker
    (and, with checkpoint_path, a restarted application) starts from the newest state
    (default: never; a replaced worker starts from the observer as registered)."""
    checkpoint_path: str | None = None
    """A directory where each observer's newest checkpoint is written, as
    ``<observer name>.pickle`` (with checkpoint_interval; default: kept in memory only)."""
    shutdown_grace_period: Duration = 10.0
    """On stop, how long calls in flight and pending alerts get before they are cut off."""
    alertmanager: AlertmanagerSettings = Field(default_factory=AlertmanagerSettings)
    """Where alerts go."""
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    """deucalion's own HTTP server."""
    shard: ShardSettings | None = None
    """Scrape only this replica's share of the targets (file_sd, kubernetes, prometheus)."""

    @field_validator("scrape_timeout")
    @classmethod
    def _check_timeout(cls, value: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("scrape_interval")
        if value is not None and interval is not None and value > interval:
            raise ValueError(
                f"scrape_timeout ({value:g}s) is longer than scrape_interval ({interval:g}s): "
                "a scrape must end before the next cycle starts"
            )
        return value

    @field_validator("checkpoint_path")
    @classmethod
    def _check_checkpoint_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("checkpoint_interval") is None:
            raise ValueError(
                "checkpoint_path is set but checkpoint_interval is not: checkpoints are taken "
                "every checkpoint_interval; set it too (say 5m), or remove checkpoint_path"
            )
        return value

    @model_validator(mode="after")
    def _check_sources(self) -> Settings:
        if self.prometheus is not None and (self.targets or self.file_sd or self.kubernetes):
            raise ValueError(
                "prometheus (federated mode) takes every target from the Prometheus server: "
                "remove targets, file_sd and kubernetes, or remove prometheus"
            )
        groups: list[tuple[str, ScrapeOptions | None]] = [
            *((f"targets.{i}", t) for i, t in enumerate(self.targets)),
            ("file_sd", self.file_sd),
            ("kubernetes", self.kubernetes),
        ]
        for key, group in groups:
            timeout = group.scrape_timeout if group is not None else None
            if timeout is not None and timeout > self.scrape_interval:
                raise ValueError(
                    f"{key}.scrape_timeout ({timeout:g}s) is longer than scrape_interval "
                    f"({self.scrape_interval:g}s): a scrape must end before the next cycle starts"
                )
        return self

    @property
    def effective_scrape_timeout(self) -> float:
        """The configured timeout, or 10s capped at the interval when none is configured."""
        if self.scrape_timeout is not None:
            return self.scrape_timeout
        return min(10.0, self.scrape_interval)
