"""The provisioner with targets that change between cycles, and with a collecting provider."""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence

from deucalion._http import Credentials
from deucalion.collection import ScrapeResult
from deucalion.observer import MetricsObserver, TargetsData, select_data
from deucalion.provisioner import MetricsProvisioner
from deucalion.targets import Target


class Quiet(MetricsObserver):
    """Desires up and reports nothing."""

    def new_data(self, targets_data_dict: TargetsData) -> None:
        return None


class Changing:
    """Answers whatever ``current`` holds; collects instead of scraping."""

    def __init__(self, current: list[Target]) -> None:
        self.current = current
        self.collected: list[list[str]] = []
        self.closed = False

    async def discover(self) -> Sequence[Target]:
        return list(self.current)

    async def collect(
        self, targets: Sequence[Target], metrics: Iterable[str] | None
    ) -> list[ScrapeResult]:
        self.collected.append([t.url for t in targets])
        return [ScrapeResult(t, up=True) for t in targets]

    async def close(self) -> None:
        self.closed = True


async def test_changing_targets_use_collect_and_forget_gone_ones() -> None:
    """Each cycle sees the new target set via collect(); gone targets are forgotten."""
    a, b = Target("http://a:1/metrics"), Target("http://b:1/metrics")
    provider = Changing([a, b])
    provisioner = MetricsProvisioner(
        scrape_interval="1h", targets_provider=provider, telemetry={"listen": "127.0.0.1:0"}
    )
    provisioner.register(Quiet({"up"}))
    async with provisioner:
        first = await provisioner.cycle()
        collector = provisioner._collector
        assert collector is not None
        forgotten: list[set[str]] = []
        collector.forget = lambda urls: forgotten.append(set(urls))  # type: ignore[method-assign]
        provider.current = [b]
        second = await provisioner.cycle()
        assert forgotten == [{a.url}]
    assert {r.target.url for r in first} == {a.url, b.url}
    assert [r.target.url for r in second] == [b.url]
    assert provider.collected[-1] == [b.url]
    assert not provider.closed  # a provider passed in belongs to the caller


def test_handed_off_data_is_a_plain_dict_without_the_targets() -> None:
    """Selection keeps the targets apart from the data: the data is a plain dict, and pickled
    it carries none of the targets' credentials to a worker."""
    secret = Target("http://a:1/metrics", credentials=Credentials(basic_auth=("u", "hunter2")))
    data, targets = select_data({"up"}, [ScrapeResult(secret, up=True)])
    assert type(data) is dict and data == {secret.url: {"up": {"{}": 1.0}}}
    assert targets == {secret.url: secret}
    sent = pickle.dumps(data)
    assert b"hunter2" not in sent and pickle.loads(sent) == data
