"""Settings: sources in order, durations, targets, and errors that name the key and source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from deucalion._http import redact_url
from deucalion.config.loading import AlertmanagerSettings, load_settings, parse_duration
from deucalion.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("15s", 15.0),
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("2", 2.0),
        (0.25, 0.25),
        ("1d", 86400.0),
        ("1m30s500ms", 90.5),
    ],
)
def test_durations_are_read_as_prometheus_writes_them(text: object, seconds: float) -> None:
    """Prometheus durations and plain numbers of seconds both work."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0.5s", 0.5),
        ("1.5m", 90.0),
        ("1.5h", 5400.0),
        (".25s", 0.25),
        ("2.5ms", 0.0025),
        ("1h0.5m", 3630.0),
        ("0", 0.0),
        ("0s", 0.0),
    ],
)
def test_decimal_durations_are_read_as_go_reads_them(text: str, seconds: float) -> None:
    """Decimal values per unit, which Go's time.ParseDuration accepts, are unambiguous."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["1x", "", "s", "-1s", "1.5.5m", "15s\nx", True, [1]])
def test_bad_durations_are_refused(bad: object) -> None:
    """Anything else is a ValueError that shows the expected forms."""
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("bad", "character"),
    [
        ("\uff11\uff15s", "FULLWIDTH DIGIT ONE"),
        ("\u0661\u0665", "ARABIC-INDIC DIGIT ONE"),
        ("1\uff4d", "FULLWIDTH LATIN SMALL LETTER M"),
        ("\u0967\u0966s", "DEVANAGARI DIGIT ONE"),
    ],
)
def test_durations_take_only_ascii_digits(bad: str, character: str) -> None:
    """Fullwidth "15s" and other non-ASCII digits are refused as Prometheus refuses them
    (Python's float() and \\d would take them), naming the character."""
    with pytest.raises(ValueError, match=f"not a duration: it has the character .*{character}"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["1_000", "1_0s"])
def test_durations_with_python_only_underscores_are_refused(bad: str) -> None:
    """float() reads 1_000; Prometheus does not, and neither does deucalion."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_a_unicode_digit_in_a_config_file_or_variable_names_the_key(tmp_path: Path) -> None:
    """From a file or an environment variable, the error names the key and the character."""
    config = tmp_path / "c.yaml"
    config.write_text("scrape_interval: \uff11\uff15s\ntargets: [a:1]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"scrape_interval: .*FULLWIDTH DIGIT ONE.*ASCII"):
        load_settings(config, environ={}, default_file=None)
    with pytest.raises(ConfigError, match=r"DEUCALION_SCRAPE_TIMEOUT.*FULLWIDTH DIGIT FIVE.*ASCII"):
        load_settings(None, environ={"DEUCALION_SCRAPE_TIMEOUT": "\uff15s"}, default_file=None)


@pytest.mark.parametrize(
    "bad",
    [
        "inf",
        "nan",
        "-inf",
        float("inf"),
        float("nan"),
        "1e-300",
        1e-300,
        "0.1ms",
        "1e300",
        "400d",
        "2y",
    ],
)
def test_non_finite_and_absurd_durations_are_refused(bad: object) -> None:
    """inf, nan, and durations below 1ms or above 366 days are refused."""
    with pytest.raises(ValueError, match=r"finite|out of range"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("scrape_interval", "inf"),
        ("shutdown_grace_period", "nan"),
        ("alertmanager.resend_interval", "1e-300"),
    ],
)
def test_the_settings_from_the_issue_are_refused_with_their_key(key: str, value: str) -> None:
    """The non-finite and absurd durations once accepted are ConfigErrors naming the key."""
    section, _, name = key.rpartition(".")
    config: dict[str, object] = {name: value}
    if section:
        config = {section: config}
    with pytest.raises(ConfigError, match=f"{key}: .*(finite|out of range)"):
        load_settings(config, environ={}, default_file=None)


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path: Path) -> None:
    """A duplicate YAML key is an error naming the file, the key and its line."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "scrape_interval: 5s\ntargets: [a:1]\nalertmanager:\n  urls: [am:1]\n"
        "  resend_interval: 1m\n  urls: [am:2]\n"
    )
    with pytest.raises(
        ConfigError,
        match=f"config file {config} is not valid YAML: .*found the key 'urls' twice at line 6",
    ):
        load_settings(config, environ={}, default_file=None)


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    """YAML's <<: merge is not a duplicate: a key after it overrides the merged one."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "x-base: &base {resend_interval: 1m, alert_name: A}\n"
        "alertmanager: {<<: *base, alert_name: B}\n"
    )
    with pytest.raises(ConfigError, match="unknown key 'x-base'"):  # not a duplicate key
        load_settings(config, environ={}, default_file=None)


@pytest.mark.parametrize("name", ["team\n", "a\nb"])
def test_a_label_name_with_a_newline_is_refused(name: str) -> None:
    """external_labels names are matched whole: a trailing newline is not a label name."""
    with pytest.raises(ConfigError, match="not a valid label name"):
        load_settings(
            {"alertmanager": {"external_labels": {name: "x"}}}, environ={}, default_file=None
        )


def test_later_sources_win(tmp_path: Path) -> None:
    """/etc file < DEUCALION_CONFIG < config= < environment < keyword arguments."""
    etc = tmp_path / "etc.yaml"
    etc.write_text(
        "scrape_interval: 1s\nscrape_timeout: 1s\nbody_size_limit: 1MB\n"
        "targets: [a:1]\nalertmanager: {alert_name: FromEtc}\n"
    )
    named = tmp_path / "named.yaml"
    named.write_text("scrape_interval: 2s\ntargets: [b:2]\n")
    settings = load_settings(
        {"scrape_interval": "3s", "alertmanager": {"resend_interval": "2m"}},
        environ={"DEUCALION_CONFIG": str(named), "DEUCALION_SCRAPE_INTERVAL": "4s"},
        default_file=etc,
        shutdown_grace_period=1,
    )
    assert settings.scrape_interval == 4.0
    assert settings.scrape_timeout == 1.0
    assert settings.body_size_limit == 10**6
    assert [t.url for t in settings.targets] == ["http://b:2/metrics"]
    assert settings.alertmanager.alert_name == "FromEtc"  # sections merge key by key
    assert settings.alertmanager.resend_interval == 120.0
    assert settings.shutdown_grace_period == 1.0


def test_keyword_arguments_beat_the_environment() -> None:
    """A keyword argument overrides the same key in the environment."""
    settings = load_settings(
        environ={"DEUCALION_SCRAPE_INTERVAL": "4s"}, default_file=None, scrape_interval="5s"
    )
    assert settings.scrape_interval == 5.0


def test_nested_environment_variables_and_lists() -> None:
    """DEUCALION_SECTION__KEY sets nested keys; lists are comma-separated or JSON."""
    settings = load_settings(
        environ={
            "DEUCALION_ALERTMANAGER__URLS": "am1:9093, https://am2:9093/",
            "DEUCALION_TARGETS": '["http://x:1/m", "y:2"]',
            "DEUCALION_TELEMETRY__ENABLED": "false",
        },
        default_file=None,
    )
    assert settings.alertmanager.urls == ["http://am1:9093", "https://am2:9093"]
    assert [t.url for t in settings.targets] == ["http://x:1/m", "http://y:2/metrics"]
    assert settings.telemetry.enabled is False


def test_the_original_injector_variables_still_work() -> None:
    """DEUCALION_ALERT_NAME and DEUCALION_ALERT_MANAGER_HOST/PORT configure Alertmanager."""
    settings = load_settings(
        environ={
            "DEUCALION_ALERT_NAME": "CpuAnomaly",
            "DEUCALION_ALERT_MANAGER_HOST": "alertmanager.monitoring",
            "DEUCALION_ALERT_MANAGER_PORT": "9094",
        },
        default_file=None,
    )
    assert settings.alertmanager.alert_name == "CpuAnomaly"
    assert settings.alertmanager.urls == ["http://alertmanager.monitoring:9094"]


def test_target_forms() -> None:
    """URLs, host:port, {url, labels} objects and {targets, labels} groups."""
    settings = load_settings(
        {
            "targets": [
                "localhost:9100",
                {"url": "https://db:9187/stats?x=1", "labels": {"team": "data"}},
                {"targets": ["a:1", "b:2"], "labels": {"job": "node"}},
            ]
        },
        environ={},
        default_file=None,
    )
    assert [(t.url, t.labels) for t in settings.targets] == [
        ("http://localhost:9100/metrics", {}),
        ("https://db:9187/stats?x=1", {"team": "data"}),
        ("http://a:1/metrics", {"job": "node"}),
        ("http://b:2/metrics", {"job": "node"}),
    ]


def test_timeout_defaults_to_the_interval_when_shorter_than_10s() -> None:
    """Without scrape_timeout, a scrape may take 10s or the interval, whichever is shorter."""
    assert (
        load_settings(environ={}, default_file=None, scrape_interval="2s").effective_scrape_timeout
        == 2.0
    )
    assert load_settings(environ={}, default_file=None).effective_scrape_timeout == 10.0


def test_an_unknown_key_is_named_with_its_file_and_a_suggestion(tmp_path: Path) -> None:
    """A typo in a YAML file: the error names the file, the key and the likely intended key."""
    path = tmp_path / "config.yaml"
    path.write_text("scrape_interval: 1s\nalertmanager:\n  url: http://am:9093\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, default_file=None)
    message = str(info.value)
    assert f"config file {path}" in message
    assert "unknown key 'alertmanager.url'" in message
    assert "did you mean 'urls'" in message


def test_every_problem_is_listed_with_its_source(tmp_path: Path) -> None:
    """Several errors from several sources are reported together, each with its origin."""
    path = tmp_path / "config.yaml"
    path.write_text("scrape_interval: soon\n")
    with pytest.raises(ConfigError) as info:
        load_settings(
            environ={"DEUCALION_CONFIG": str(path), "DEUCALION_TARGETS": "ftp://x"},
            default_file=None,
        )
    message = str(info.value)
    assert f"config file {path} (from DEUCALION_CONFIG): scrape_interval: 'soon'" in message
    assert "environment variable DEUCALION_TARGETS" in message
    assert "not a scrape URL" in message


def test_a_missing_config_file_named_by_deucalion_config_is_an_error_naming_it(
    tmp_path: Path,
) -> None:
    """DEUCALION_CONFIG set by hand to a file that is not there: an error naming the file, the
    variable and what to do (only the injector's optional ConfigMap makes it a warning); a
    missing -c FILE (config=) stays an error too."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DEUCALION_CONFIG": str(missing)}, default_file=None)
    message = str(info.value)
    assert str(missing) in message and "DEUCALION_CONFIG" in message
    assert "set DEUCALION_CONFIG to an existing YAML file, or unset it" in message
    optional = {
        "DEUCALION_CONFIG": str(tmp_path / "other.yaml"),
        "DEUCALION_CONFIG_OPTIONAL": "true",
    }
    with pytest.raises(ConfigError, match=f"cannot read config file {missing}"):
        load_settings(missing, environ=optional, default_file=None)
    assert load_settings(environ=optional, default_file=None).scrape_interval == 15.0


@pytest.mark.parametrize(("value", "enabled"), [("true", True), ("True", True), ("false", False)])
def test_kubernetes_true_in_the_environment_as_in_a_file(value: str, enabled: bool) -> None:
    """`kubernetes: true` is the documented file form; DEUCALION_KUBERNETES=true is its
    variable (it was refused with pydantic's 'valid dictionary' text)."""
    settings = load_settings(environ={"DEUCALION_KUBERNETES": value}, default_file=None)
    assert (settings.kubernetes is not None) is enabled


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"DEUCALION_ALERTMANAGER__QUEUE_SIZE": "lots"},
            "environment variable DEUCALION_ALERTMANAGER__QUEUE_SIZE: alertmanager.queue_size: "
            "'lots' is not a whole number: write one such as 10000",
        ),
        (
            {"DEUCALION_TELEMETRY__ENABLED": "maybe"},
            "environment variable DEUCALION_TELEMETRY__ENABLED: telemetry.enabled: "
            "'maybe' is neither true nor false: write true or false",
        ),
        (
            {"DEUCALION_KUBERNETES": "maybe"},
            "environment variable DEUCALION_KUBERNETES: kubernetes: 'maybe' is not a section: "
            "write true (its defaults), false, or a mapping of its keys (annotations_file, ",
        ),
    ],
)
def test_a_wrong_type_is_one_plain_line_naming_the_variable_and_key(
    environ: dict[str, str], expected: str
) -> None:
    """Wrong types are worded as deucalion's other errors, not pydantic's 'Input should be a
    valid integer, unable to parse string as an integer'."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, default_file=None)
    message = str(info.value)
    assert expected in message and "Input should" not in message


def test_a_wrong_type_in_a_file_names_the_file_and_key(tmp_path: Path) -> None:
    """The same wording for a file, naming it; a long value is not quoted (it may be a
    secret in the wrong key)."""
    path = tmp_path / "c.yaml"
    path.write_text("alertmanager: {queue_size: [1]}\ntelemetry: {enabled: yes please}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, default_file=None)
    message = str(info.value)
    assert (
        f"config file {path}: alertmanager.queue_size: a list is not a whole number: "
        "write one such as 10000" in message
    )
    assert f"config file {path}: telemetry.enabled: 'yes please' is neither true nor false" in (
        message
    )
    secret = "x" * 40
    with pytest.raises(ConfigError) as info:
        load_settings({"alertmanager": {"queue_size": secret}}, environ={}, default_file=None)
    assert secret not in str(info.value) and "a str is not a whole number" in str(info.value)


def test_a_timeout_longer_than_the_interval_is_refused() -> None:
    """scrape_timeout may not exceed scrape_interval, as in Prometheus."""
    with pytest.raises(ConfigError, match=r"scrape_timeout .* is longer than scrape_interval"):
        load_settings(
            {"scrape_interval": "1s", "scrape_timeout": "2s"}, environ={}, default_file=None
        )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("a: [unclosed", "not valid YAML: .* at line 1, column 13"),
        ("- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_a_broken_file_is_named(tmp_path: Path, content: str, problem: str) -> None:
    """Invalid YAML, or YAML that is not a mapping, names the file and what is wrong."""
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=problem) as info:
        load_settings(path, environ={}, default_file=None)
    assert str(path) in str(info.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    """A config file that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"cannot read config file .*nope\.yaml"):
        load_settings(tmp_path / "nope.yaml", environ={}, default_file=None)


def test_invalid_label_names_are_refused() -> None:
    """Target labels must be valid Prometheus label names."""
    with pytest.raises(ConfigError, match="'bad-name' is not a valid label name"):
        load_settings(
            {"targets": [{"url": "a:1", "labels": {"bad-name": "x"}}]},
            environ={},
            default_file=None,
        )


def test_a_variable_close_to_a_setting_is_ignored_with_a_warning_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A typo'd DEUCALION_ variable does not stop the sidecar; a warning names the setting."""
    with caplog.at_level("WARNING", logger="deucalion.config.loading"):
        settings = load_settings(environ={"DEUCALION_SCRAPE_INTERVL": "5s"}, default_file=None)
    assert settings.scrape_interval == 15.0
    assert (
        "DEUCALION_SCRAPE_INTERVL is not a setting and is ignored; did you mean "
        "DEUCALION_SCRAPE_INTERVAL?"
    ) in caplog.text


def test_every_unknown_variable_is_found_with_the_closest_setting_from_the_model(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The variables deucalion reads come from the settings model (sections and their keys),
    plus those that are no setting; any other DEUCALION_* name is reported with the closest,
    and a sidecar that starts with one logs that warning once, without its value."""
    from deucalion.config.loading import Settings, setting_variables, unknown_variables

    known = setting_variables()
    assert {
        "DEUCALION_SCRAPE_INTERVAL",
        "DEUCALION_ALERTMANAGER",
        "DEUCALION_ALERTMANAGER__URLS",
        "DEUCALION_SHARD__COUNT",
    } <= set(known)
    assert len(known) > len(Settings.model_fields)
    environ = {
        **{name: "1" for name in known},
        **SERVICE_LINKS,
        "DEUCALION_LOG_LEVEL": "INFO",
        "DEUCALION_CONFIG": "c.yaml",
        "DEUCALION_ALERT_NAME": "x",
        "DEUCALION_INJECTOR_SIDECAR__IMAGE": "x",
        "DEUCALION_ALERTMANAGER__EXTERNAL_LABELS__TEAM": "x",  # a key of a mapping
        "DEUCALION_ALERTMANAGER_UR": "s3cr3t",
        "DEUCALION_ALERTMANAGER__URL": "x",
        "DEUCALION_LOG_LEVL": "x",
        "DEUCALION_MY_OWN_THING": "x",
        "OTHER": "x",
        "DEUCALION_SCRAPE_INTERVAL__MAX": "x",
    }  # nothing is below a value
    # Below a setting (DEUCALION_ALERTMANAGER__URL, DEUCALION_SCRAPE_INTERVAL__MAX) a variable
    # is read into it, and refused there: not one deucalion does not read.
    assert unknown_variables(environ) == [
        ("DEUCALION_ALERTMANAGER_UR", "DEUCALION_ALERTMANAGER__URLS"),
        ("DEUCALION_LOG_LEVL", "DEUCALION_LOG_LEVEL"),
        ("DEUCALION_MY_OWN_THING", None),
    ]
    with caplog.at_level("WARNING", logger="deucalion.config.loading"):
        load_settings(
            environ={
                "DEUCALION_ALERTMANAGER_UR": "http://alice:s3cr3t@am:9093",
                "DEUCALION_MY_OWN_THING": "x",
            },
            default_file=None,
        )
    assert [r.getMessage() for r in caplog.records] == [
        "environment variable DEUCALION_ALERTMANAGER_UR is not a setting and is ignored; "
        "did you mean DEUCALION_ALERTMANAGER__URLS?",
        "environment variable DEUCALION_MY_OWN_THING is not a setting and is ignored",
    ]


SERVICE_LINKS = {  # what Kubernetes sets for a Service named deucalion with a port "metrics"
    "DEUCALION_SERVICE_HOST": "10.0.0.7",
    "DEUCALION_SERVICE_PORT": "9464",
    "DEUCALION_SERVICE_PORT_METRICS": "9464",
    "DEUCALION_PORT": "tcp://10.0.0.7:9464",
    "DEUCALION_PORT_9464_TCP": "tcp://10.0.0.7:9464",
    "DEUCALION_PORT_9464_TCP_PROTO": "tcp",
    "DEUCALION_PORT_9464_TCP_PORT": "9464",
    "DEUCALION_PORT_9464_TCP_ADDR": "10.0.0.7",
}


def test_service_links_and_log_level_are_not_settings(caplog: pytest.LogCaptureFixture) -> None:
    """Kubernetes service links and DEUCALION_LOG_LEVEL are ignored, logged at debug only."""
    environ = {**SERVICE_LINKS, "DEUCALION_LOG_LEVEL": "DEBUG", "DEUCALION_SCRAPE_INTERVAL": "5s"}
    with caplog.at_level("DEBUG", logger="deucalion.config.loading"):
        settings = load_settings(environ=environ, default_file=None)
    assert settings.scrape_interval == 5.0
    assert {r.levelname for r in caplog.records} == {"DEBUG"}
    assert "DEUCALION_SERVICE_HOST is not a setting: ignored" in caplog.text


def test_an_unknown_key_in_a_section_from_the_environment_is_still_an_error() -> None:
    """Under a known section, a typo'd key is an error naming the variable."""
    with pytest.raises(ConfigError, match="environment variable DEUCALION_ALERTMANAGER__URL"):
        load_settings(environ={"DEUCALION_ALERTMANAGER__URL": "http://am:9093"}, default_file=None)


def test_the_command_takes_its_log_level_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEUCALION_LOG_LEVEL, the injector's documented extra_env example, sets the log level."""
    config = tmp_path / "c.yaml"
    config.write_text("targets: [a:1]\n")
    code = (
        "import logging, sys; from deucalion.cli import main; rc = main(sys.argv[1:]); "
        "print(logging.getLevelName(logging.getLogger().level))"
    )
    env = {"DEUCALION_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-c", code, "check-config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "WARNING"


def test_the_injectors_own_variables_are_not_settings() -> None:
    """DEUCALION_INJECTOR_* configure the injector and are ignored by the sidecar's settings."""
    settings = load_settings(
        environ={"DEUCALION_INJECTOR_SIDECAR__IMAGE": "x:1"}, default_file=None
    )
    assert settings.scrape_interval == 15.0


def test_credentials_in_a_target_url_are_refused_without_repeating_them() -> None:
    """user:password@ in a target URL is refused, pointing to basic_auth, without the secret."""
    with pytest.raises(ConfigError, match="basic_auth") as info:
        load_settings(
            {"targets": ["http://me:s3cret@host:9100/metrics"]}, environ={}, default_file=None
        )
    assert "s3cret" not in str(info.value)


def test_the_application_imports_yaml_and_difflib_only_when_it_needs_them() -> None:
    """Settings from arguments, no file and no typo: PyYAML and difflib are never imported."""
    # They cost the application about 1 MB of RSS (issue #7); a file or a typo brings them in.
    code = (
        "import sys, deucalion.provisioner; "
        "from deucalion.config.loading import load_settings; "
        "load_settings(default_file=None, environ={}, targets=['localhost:9100']); "
        "loaded = {'yaml', 'difflib'} & set(sys.modules); assert not loaded, loaded; "
        "load_settings(default_file=None, environ={'DEUCALION_TARGETS': '[a:1, b:2]'}); "
        "assert 'yaml' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_password_in_an_alertmanager_url_shows_as_stars_but_is_kept_for_delivery() -> None:
    """user:password@ in alertmanager.urls: repr, str and JSON show user:***@; the URL keeps it."""
    url = "http://deucalion:s3cr3t@am.example:9093"
    settings = load_settings(
        default_file=None,
        environ={},
        targets=["localhost:9100"],
        alertmanager={"urls": [url, "am2:9093"]},
    )
    assert settings.alertmanager.urls == [url, "http://am2:9093"]
    for text in (
        repr(settings),
        str(settings),
        repr(settings.alertmanager),
        str(settings.alertmanager),
        settings.model_dump_json(),
    ):
        assert "s3cr3t" not in text
        assert "http://deucalion:***@am.example:9093" in text and "http://am2:9093" in text
    # Settings passed back in with overrides are dumped and validated again: nothing is lost.
    again = load_settings(settings, default_file=None, environ={}, scrape_interval="5s")
    assert again.alertmanager.urls == settings.alertmanager.urls
    with pytest.raises(ConfigError, match=r"'ftp://deucalion:\*\*\*@am:9093' is not") as info:
        load_settings(
            default_file=None, environ={}, alertmanager={"urls": ["ftp://deucalion:s3cr3t@am:9093"]}
        )
    assert "s3cr3t" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://deucalion:s3cr3t@am:9093/x", "http://deucalion:***@am:9093/x"),
        ("deucalion:s3cr3t@am:9093", "deucalion:***@am:9093"),
        ("//deucalion:s3cr3t@am", "//deucalion:***@am"),
        ("https://deucalion:s3cr3t@[::1]:9093", "https://deucalion:***@[::1]:9093"),
        ("http://deucalion:s3%40cr3t@am", "http://deucalion:***@am"),
        ("http://deucalion:s3#cr3t@am:9093/x", "http://deucalion:***@am:9093/x"),
        ("http://deucalion:s3cr3t@[::1", "http://deucalion:***@[::1"),
        ("http://deucalion@am:9093", "http://deucalion@am:9093"),
        ("http://am:9093/path@x:y", "http://am:9093/path@x:y"),
    ],
)
def test_redact_url_shows_everything_but_the_password(url: str, shown: str) -> None:
    """redact_url stars the password, with or without a scheme, even in a URL urlsplit
    refuses or one whose password holds a # not percent-encoded; nothing else changes."""
    assert redact_url(url) == shown


def test_a_section_validated_on_its_own_does_not_quote_a_password_in_its_error() -> None:
    """A section built directly raises pydantic's error, which quotes no input: no password."""
    with pytest.raises(ValidationError) as info:
        AlertmanagerSettings(urls=["ftp://deucalion:s3cr3t@am:9093"])
    assert "s3cr3t" not in str(info.value) and "'ftp://deucalion:***@am:9093'" in str(info.value)


def test_a_password_in_the_prometheus_url_shows_as_stars_but_is_kept_for_requests() -> None:
    """user:password@ in prometheus.url: repr, str, JSON and errors show user:***@ (a # in the
    password too); the URL keeps it; it cannot be combined with basic_auth or a token."""
    url = "http://fed:s3cr3t@prometheus:9090"
    settings = load_settings(default_file=None, environ={}, prometheus={"url": url})
    assert settings.prometheus is not None and settings.prometheus.url == url
    for text in (
        repr(settings),
        str(settings),
        repr(settings.prometheus),
        str(settings.prometheus),
        settings.model_dump_json(),
    ):
        assert "s3cr3t" not in text and "'http://fed:***@prometheus:9090'" in text.replace('"', "'")
    again = load_settings(settings, default_file=None, environ={}, scrape_interval="5s")
    assert again.prometheus is not None and again.prometheus.url == url
    for bad, problem in [
        ("ftp://fed:s3cr3t@prometheus:9090", "is not a Prometheus URL"),
        ("http://fed:s3#cr3t@prometheus:9090", "has an invalid port"),
    ]:
        with pytest.raises(ConfigError, match=problem) as info:
            load_settings(default_file=None, environ={}, prometheus={"url": bad})
        assert "s3cr3t" not in str(info.value) and "fed:***@prometheus:9090" in str(info.value)
    with pytest.raises(ConfigError, match="give the credentials one way"):
        load_settings(
            default_file=None,
            environ={},
            prometheus={"url": url, "basic_auth": {"username": "other"}},
        )


def test_a_broken_file_is_not_quoted(tmp_path: Path) -> None:
    """The YAML error names line, column and problem but quotes no line: it may hold a URL's
    password."""
    path = tmp_path / "broken.yaml"
    path.write_text("alertmanager:\n  urls: [http://deucalion:s3cr3t@am:9093\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={}, default_file=None)
    assert "s3cr3t" not in str(info.value)
    assert "expected ',' or ']', but got '<stream end>' at line 3, column 1" in str(info.value)


@pytest.mark.parametrize("url", ["https://me:s3cr3t@k8s:6443", "https://me:s3#cr3t@k8s:6443/"])
def test_credentials_in_the_kubernetes_api_url_are_refused_without_repeating_them(url: str) -> None:
    """user:password@ in kubernetes.api_url is refused, since the service account logs in,
    and the error does not repeat it."""
    with pytest.raises(ConfigError, match="service-account token") as info:
        load_settings(default_file=None, environ={}, kubernetes={"api_url": url})
    assert "s3" not in str(info.value)


def test_checkpoints_are_durations_and_a_path_needs_an_interval(tmp_path: Path) -> None:
    """checkpoint_interval is a duration; checkpoint_path alone is refused, saying what to
    set."""
    settings = load_settings(
        {"checkpoint_interval": "5m", "checkpoint_path": str(tmp_path)},
        environ={},
        default_file=None,
    )
    assert settings.checkpoint_interval == 300.0
    assert settings.checkpoint_path == str(tmp_path)
    with pytest.raises(ConfigError, match="checkpoint_path is set but checkpoint_interval"):
        load_settings({"checkpoint_path": str(tmp_path)}, environ={}, default_file=None)


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:S3c/ret@am:9093",
        "http://alice:S3c?ret@am:9093",
        "http://alice:S3c#ret@am:9093",
        "alice:S3c/ret@am:9093",
    ],
)
def test_an_alertmanager_password_with_an_unencoded_separator_is_refused_unquoted(url: str) -> None:
    """A /, ? or # in an Alertmanager password would leak it in logs and labels: refused,
    with a message that says how to fix it and does not repeat it."""
    with pytest.raises(ConfigError, match="not percent-encoded") as raised:
        load_settings({"alertmanager": {"urls": [url]}}, environ={}, default_file=None)
    assert "S3c" not in str(raised.value)


def test_an_encoded_alertmanager_password_is_accepted() -> None:
    """The same password percent-encoded is a valid URL, kept for delivery."""
    settings = load_settings(
        {"alertmanager": {"urls": ["http://alice:S3c%2Fret@am:9093"]}},
        environ={},
        default_file=None,
    )
    assert settings.alertmanager.urls == ["http://alice:S3c%2Fret@am:9093"]


OBSERVERS_MODULE = """\
import deucalion as dc


class WithDefault(dc.MetricsObserver):
    def __init__(self, desired_metrics=frozenset({"value"}), threshold=1.0):
        super().__init__(desired_metrics)
        self.threshold = threshold

    def new_data(self, targets_data_dict):
        return []


class NoDefault(dc.MetricsObserver):
    def __init__(self, desired_metrics, threshold=1.0):
        super().__init__(desired_metrics)

    def new_data(self, targets_data_dict):
        return []
"""


def _observers_config(tmp_path: Path, entry: str) -> Path:
    (tmp_path / "obs.py").write_text(OBSERVERS_MODULE)
    config = tmp_path / "c.yaml"
    config.write_text(f"targets: ['127.0.0.1:1']\nscrape_interval: 0.2s\nobservers:\n{entry}")
    return config


def test_an_observers_entry_may_leave_desired_metrics_to_the_class(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An observers: entry without desired_metrics (once refused: the key was required even
    for a class with a default) is valid, and `deucalion record` of the configured observers
    records the class's default metrics."""
    from deucalion.cli import main

    config = _observers_config(
        tmp_path, f"  '{tmp_path}/obs.py:WithDefault':\n    kwargs: {{threshold: 2.0}}\n"
    )
    assert main(["check-config", str(config)]) == 0, capsys.readouterr().err
    assert load_settings(config).observers[f"{tmp_path}/obs.py:WithDefault"].desired_metrics is None
    out = tmp_path / "r.om"
    assert main(["record", "-c", str(config), "-o", str(out), "--duration", "0.5s"]) == 0, (
        capsys.readouterr().err
    )
    assert "recorded " in capsys.readouterr().err
    assert 'up{deucalion_target="http://127.0.0.1:1/metrics"} 0' in out.read_text()


@pytest.mark.parametrize("command", [["run"], ["record", "-o", "r.om.gz", "--duration", "1"]])
def test_an_observers_entry_without_desired_metrics_for_a_class_without_a_default_is_named(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An entry that neither gives desired_metrics nor has a class default for them is one
    error naming the file, the entry and the key; nothing runs or is recorded."""
    from deucalion.cli import main

    monkeypatch.chdir(tmp_path)
    config = _observers_config(tmp_path, f"  '{tmp_path}/obs.py:NoDefault': {{}}\n")
    assert main([*command, "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert (
        f"deucalion: {config}: observers: '{tmp_path}/obs.py:NoDefault': desired_metrics "
        "is missing, "
        "and NoDefault has no default for it: add desired_metrics: [name, ...] to the "
        "entry"
    ) in err
    assert "Traceback" not in err
    assert not (tmp_path / "r.om.gz").exists()


def test_an_observers_entry_with_no_desired_metrics_at_all_is_refused(tmp_path: Path) -> None:
    """`desired_metrics: []` is still an error naming the key: an observer of nothing."""
    config = _observers_config(tmp_path, "  'obs:WithDefault': {desired_metrics: []}\n")
    with pytest.raises(ConfigError, match=r"observers\.obs:WithDefault\.desired_metrics"):
        load_settings(config)


def test_a_wrong_value_under_a_key_of_credentials_is_never_quoted() -> None:
    """``basic_auth`` given as a string ("user:password") where a section goes: the error
    names the key and the kind of value, never the value (it quoted 'admin:hunter2')."""
    environ = {"DEUCALION_TARGETS": '[{"url": "http://h:9/m", "basic_auth": "admin:hunter2"}]'}
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ, default_file=None)
    message = str(info.value)
    assert "basic_auth" in message and "a str is not a section" in message
    assert "hunter2" not in message


def test_a_variable_below_a_setting_naming_nothing_there_is_an_error_not_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``DEUCALION_TELEMETRY__LISTN`` is read into ``telemetry`` and refused there, naming the
    closest key; it is not also said to be ignored (it was, then refused). A variable that is
    no setting at all is still ignored with a warning."""
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"DEUCALION_TELEMETRY__LISTN": "x"}, default_file=None)
    assert "unknown key 'telemetry.listn'; did you mean 'listen'?" in str(info.value)
    assert "ignored" not in caplog.text
    load_settings(environ={"DEUCALION_ALERTMANAGER_UR": "x"}, default_file=None)
    assert "DEUCALION_ALERTMANAGER_UR is not a setting and is ignored" in caplog.text


def test_a_list_or_text_of_the_wrong_kind_is_one_plain_line() -> None:
    """Not pydantic's 'Input should be a valid list'."""
    with pytest.raises(ConfigError) as info:
        load_settings({"targets": {"url": "http://h:9/m"}}, environ={}, default_file=None)
    assert "targets: a dict is not a list: write a list" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"telemetry": {"listen": [1]}}, environ={}, default_file=None)
    assert "telemetry.listen: a list is not text: write a string" in str(info.value)
