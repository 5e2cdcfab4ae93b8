"""What a running sidecar imports: what its configuration does not use stays unloaded.

benchmarks/bench_footprint measures the memory this saves; these tests check, in a fresh
interpreter, which modules are loaded (never sizes or times).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What the application of bench_footprint and of README's example imports to run: the
# provisioner built from arguments, the worker process's start, the runner, telemetry.
APPLICATION = """
import sys
import deucalion as dc
import deucalion.dispatch.process, deucalion.runner, deucalion.telemetry

provisioner = dc.MetricsProvisioner(targets=["127.0.0.1:9100"], scrape_interval=1,
                                    telemetry={"listen": "127.0.0.1:0"})

class Load(dc.MetricsObserver):
    def new_data(self, targets_data_dict):
        return None

provisioner.register(Load({"node_load1"}))
from deucalion.collection import build_collector
collector = build_collector(provisioner.settings, None, provisioner.desired_metrics())
"""


def _loaded(code: str, modules: list[str]) -> dict[str, bool]:
    """Which of ``modules`` are in ``sys.modules`` after running ``code`` in a fresh
    interpreter."""
    script = (
        textwrap.dedent(code) + "\nimport json\n"
        f"print(json.dumps([m in sys.modules for m in {modules!r}]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    return dict(zip(modules, json.loads(out.strip().splitlines()[-1]), strict=True))


def test_a_scraping_sidecar_loads_no_openmetrics_parser_federation_or_yaml() -> None:
    """Targets that serve text 0.0.4, scraped directly, configured by arguments: the
    OpenMetrics parser, federation and PyYAML are never imported."""
    unused = [
        "deucalion.exposition.openmetrics",
        "deucalion.exposition.openmetrics_bulk",
        "deucalion.collection.federation",
        "yaml",
    ]
    # The check can fail: the same modules, imported on purpose, are found.
    imported = "import sys\n" + "\n".join(f"import {m}" for m in unused)
    assert _loaded(imported, unused) == dict.fromkeys(unused, True)
    assert _loaded(APPLICATION, [*unused, "deucalion.collection.scrape"]) == {
        **dict.fromkeys(unused, False),
        "deucalion.collection.scrape": True,
    }


def test_the_first_openmetrics_body_loads_its_parser() -> None:
    """``openmetrics_loaded`` says whether the OpenMetrics parser is imported; reading an
    OpenMetrics body imports it, and parses it."""
    code = """
    import sys
    from deucalion.exposition.parser import openmetrics_loaded, parse_exposition
    before = openmetrics_loaded()
    samples = parse_exposition("# TYPE jobs counter\\njobs_total 3\\n# EOF\\n", openmetrics=True)
    assert samples == {"jobs_total": {"{}": 3.0}}, samples
    assert not before and openmetrics_loaded()
    """
    assert _loaded(code, ["deucalion.exposition.openmetrics"]) == {
        "deucalion.exposition.openmetrics": True
    }


def test_federation_is_loaded_when_configured() -> None:
    """A sidecar that reads its targets through a Prometheus server gets the federation
    collector, imported then; ``deucalion.collection.FederationCollector`` still resolves."""
    code = """
    import sys
    from deucalion.collection import build_collector
    from deucalion.config.loading import load_settings
    settings = load_settings(default_file=None, environ={},
                             prometheus={"url": "http://127.0.0.1:9090"})
    collector = build_collector(settings, None, {"up"})
    import deucalion.collection
    assert type(collector) is deucalion.collection.FederationCollector, type(collector)
    """
    assert _loaded(code, ["deucalion.collection.federation"]) == {
        "deucalion.collection.federation": True
    }
