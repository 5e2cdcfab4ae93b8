"""MetricsObserver claims no attribute name a data scientist would use (issue 13, item 8)."""

from __future__ import annotations

from typing import Any

import deucalion as dc
from deucalion.observer import MetricsObserver
from tests.helpers import NODE_LIKE, TargetServer, text, wait_for

# What the authors of observers name their own state and helpers.
COMMON_NAMES = [
    "name",
    "model",
    "models",
    "window",
    "windows",
    "wants",
    "stats",
    "data",
    "history",
    "state",
    "config",
    "settings",
    "params",
    "hyperparams",
    "threshold",
    "thresholds",
    "targets",
    "target",
    "metrics",
    "metric",
    "scores",
    "score",
    "alerts",
    "alert",
    "logger",
    "log",
    "scaler",
    "detector",
    "estimator",
    "clf",
    "buffer",
    "features",
    "labels",
    "results",
    "result",
    "count",
    "counter",
    "counts",
    "seen",
    "fitted",
    "trained",
    "mean",
    "std",
    "baseline",
    "observer",
    "provisioner",
    "worker",
    "timeout",
    "interval",
    "start",
    "stop",
    "run",
    "fit",
    "predict",
    "update",
    "reset",
    "process",
    "pid",
    "queue",
    "lock",
    "cache",
    "version",
    "id",
    "path",
    "device",
    "rng",
    "seed",
    "epoch",
    "step",
    "batch",
    "desired",
    "selection",
    "select",
    "handoff",
    "call",
    "calls",
    "errors",
    "restarts",
    "ready",
    "closed",
    "setup",
    "close",
    "observe",
    "level",
    "debug",
    "verbose",
    "keys",
    "values",
    "items",
    "series",
    "samples",
    "up",
    "last",
    "previous",
    "current",
    "time",
    "clock",
    "now",
    "lookback",
    "horizon",
    "alpha",
    "beta",
    "gamma",
    "k",
    "n",
    "size",
    "shape",
    "dtype",
    "columns",
    "index",
    "frame",
    "df",
]


class NameHungryObserver(dc.MetricsObserver):
    """Sets every common attribute name, then checks in new_data that each is still its own."""

    def __init__(self) -> None:
        super().__init__({"go_goroutines", "up"})
        for attribute in COMMON_NAMES:
            setattr(self, attribute, f"own {attribute}")
        self.name = "x"
        self.wants = {"coffee"}
        self.stats = {"calls": 0}

    def new_data(self, targets_data_dict: dict[str, Any]) -> Any:
        self.stats["calls"] += 1
        changed = [
            a
            for a in COMMON_NAMES
            if a not in ("name", "wants", "stats") and getattr(self, a) != f"own {a}"
        ]
        return dc.Alert(
            annotations={
                "name": self.name,
                "wants": ",".join(self.wants),
                "changed": ",".join(changed),
                "calls": str(self.stats["calls"]),
            }
        )


def test_the_base_class_defines_none_of_the_common_names() -> None:
    """No common name is an attribute, property or method of MetricsObserver."""
    claimed = [n for n in COMMON_NAMES if hasattr(MetricsObserver, n)]
    assert claimed == []


def test_setting_name_and_wants_works_and_the_observer_keeps_its_class_name() -> None:
    """self.name = 'x' is the author's attribute; the observer is named by class or
    observer_name."""
    from deucalion.observer import name_of

    observer = NameHungryObserver()
    assert observer.name == "x" and observer.wants == {"coffee"}
    assert name_of(observer) == "NameHungryObserver"
    observer.observer_name = "hungry"
    assert name_of(observer) == "hungry" and observer.name == "x"


async def test_the_provisioner_runs_an_observer_that_uses_every_common_name(
    target_server: TargetServer,
) -> None:
    """register, start and many cycles work, and new_data sees its own attributes unchanged."""
    target_server.add("/metrics", text(NODE_LIKE))
    await target_server.start()
    provisioner = dc.MetricsProvisioner(
        targets=[target_server.url("/metrics")], scrape_interval=0.2, telemetry={"enabled": False}
    )
    provisioner.register(metricsObserver=NameHungryObserver())
    async with provisioner:
        sender = provisioner.alert_sender
        assert sender is not None

        def called_thrice() -> bool:
            firing = sender.firing()
            return bool(firing) and int(firing[0]["annotations"]["calls"]) >= 3

        await wait_for(called_thrice)
        assert not provisioner.cycle_loop_ended
        (alert,) = sender.firing()
    assert alert["labels"]["observer"] == "NameHungryObserver"
    assert alert["annotations"]["name"] == "x"
    assert alert["annotations"]["wants"] == "coffee"
    assert alert["annotations"]["changed"] == ""


def test_deucalion_reads_no_user_attribute_of_an_observer() -> None:
    """No module of deucalion reads observer.name or observer.wants: the user's attributes."""
    import re
    from pathlib import Path

    import deucalion

    reads = re.compile(r"\bobserver\.(name|wants)\b")
    found = [
        f"{path.name}:{n}"
        for path in Path(deucalion.__file__).parent.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert found == [], "use deucalion.observer.name_of(observer)"
