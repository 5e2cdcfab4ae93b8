"""A preset's incidents: the signal series that moved on one target, grouped into one alert.

``Moved`` is one signal series judged on one cycle; an ``Incident`` gathers the series that
move on one target while it is open (its *members*), judges each cycle whether it goes on
(see ``Incident.judge``), and says when a later move is news of its own rather than part of
it (``Incident.superseded_by``); ``incident_alert`` is its alert. The rules are described in
``deucalion.presets.observer``'s module docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from deucalion._redact import redact_url
from deucalion.alerting.alerts import Alert
from deucalion.detectors.observer import EPISODE
from deucalion.presets.signals import Signal

__all__ = [
    "BACK",
    "YOUNG_CYCLES",
    "Band",
    "Incident",
    "IncidentCycles",
    "Moved",
    "Recovery",
    "beyond",
    "clamped",
    "hurts",
    "incident_alert",
    "member_name",
    "number_text",
    "openers",
]


def beyond(signal: Signal, value: float, low: float, high: float, least: float) -> bool:
    """Whether ``value`` is out of the band ``low``..``high`` by ``least`` (from its centre),
    and past the signal's ``limit`` if it has one, in the direction that hurts ``signal``.
    Every signal is 0 or more (``clamped``): a value of 0, the lowest it can be, is below a
    band reaching 0 or under it (a request rate of a few a second has a band reaching under
    0, which no stop could leave; the floors still judge the fall, from the band's centre)."""
    centre = (low + high) / 2
    limit = signal.limit
    up = value > max(high, centre + least, -math.inf if limit is None else limit)
    under = value < low or (value <= 0.0 and low <= 0.0)
    down = under and value < min(centre - least, math.inf if limit is None else limit)
    return (up and signal.direction != "down") or (down and signal.direction != "up")


def hurts(signal: Signal, value: float, low: float, high: float) -> bool:
    """Whether ``value`` is on the side of its band's centre that hurts ``signal``."""
    centre = (low + high) / 2
    return signal.direction == "both" or (value > centre) == (signal.direction == "up")


@dataclass
class Moved:
    """One signal series judged this cycle."""

    signal: Signal
    target: str
    series: str
    score: float
    value: float
    lower: float
    upper: float
    held: int = 0
    #: The detector's score of this cycle (``score`` is the move's highest, 0 if harmless).
    fresh: float = 0.0
    #: The anomaly kind (``spike``, ``level_shift``, ...): of the move's highest score.
    kind: str = ""

    @property
    def name(self) -> str:
        return self.signal.name + ("" if self.series == "{}" else self.series)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.signal.name, self.target, self.series)


#: A series' band when an incident opened, and the floor a value must be beyond it by.
Band = tuple[float, float, float]


@dataclass
class Incident:
    """One target's incident: what opened it, what moved most, its members and their bands
    before it, and how long it has been open and quiet."""

    started: float
    opener: Moved
    top: Moved
    #: Every series of the target: its band when the incident opened (a member's yardstick).
    before: dict[tuple[str, str, str], Band]
    #: The observer's cycle it opened on, and of its last news: a member joining, or a
    #: member scored at the detector's threshold again.
    opened: int = 0
    news: int = 0
    #: Cycles of the target's history the observer had seen when it opened.
    history: int = 0
    #: The number of its alert's label set among those of its target and opener signal
    #: (``EPISODE``: see ``deucalion.presets.observer.EPISODE_SECONDS``); 1 is unlabelled.
    episode: int = 1
    members: dict[str, float] = field(default_factory=dict)  # name -> highest score
    #: Member series -> cycles in a row it has been away without the detector scoring it.
    settled: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: Members away from their band this cycle, not yet the new normal (holding it open).
    away: set[tuple[str, str, str]] = field(default_factory=set)
    cycles: int = 0
    quiet: int = 0
    #: Cycles in a row none of its members had a value (the target down, its series gone).
    unseen: int = 0

    def superseded_by(self, moved: list[Moved], cycle: int, news_cycles: int) -> list[Moved]:
        """The moves of ``moved`` that are news of their own, not part of this incident: of
        series not holding it open, that started ``news_cycles`` or more after its last news
        (``cycle`` is the observer's), and of a signal more severe than the one that opened
        it (an error ratio rising while a request-rate incident is open). An incident held
        open by levels that have stopped changing (a permanent new level, or one a young
        detector's rough band opened) does not swallow what happens minutes later, and a
        warning does not swallow what would page: its alert keeps the opener's
        ``severity``, which is what Alertmanager routes on."""
        worse = [m for m in moved if m.key not in self.settled and self.escalated_by(m)]
        if cycle - self.news < news_cycles:
            return worse
        return [
            m
            for m in moved
            if m in worse
            or (m.key not in self.away and (cycle - m.held + 1) - self.news >= news_cycles)
        ]

    def superseded_why(self, ready: list[Moved], cycle: int) -> str:
        """Why the moves ``ready`` end this incident, for its last alert."""
        names = ", ".join(sorted({m.name for m in ready}))
        if any(self.escalated_by(m) for m in ready):
            return f"superseded: {names} moved, more severe than its {self.opener.signal.severity}"
        gap = cycle - max(m.held for m in ready) + 1 - self.news
        return f"superseded: {names} moved {gap} cycles after its last news"

    def escalated_by(self, move: Moved) -> bool:
        """Whether ``move``'s signal is of a higher severity than the incident's opener."""
        return severity_rank(move.signal.severity) > severity_rank(self.opener.signal.severity)

    def absorb(self, moved: list[Moved], cycle: int, threshold: float) -> None:
        """Take this cycle's ``moved`` series of its target as members; a series joining,
        or a member scored at ``threshold`` again, is news. The reading the alert shows
        (``top``) is the one of the cycle the incident's highest score so far was reached
        (or its series joined with it): a value away from its band (a later cycle of a dip
        back into it is still part of the move, and read "0, expected 0 to 0"), and
        annotations that change only as the incident grows (each change is sent to
        Alertmanager at once, not every ``resend_interval``)."""
        for item in moved:
            if item.key not in self.settled or item.fresh >= threshold:
                self.news = cycle
            # A new highest of the incident and of the series: a series joining, or a member's
            # new peak (a ramp's or a second move's, whose score may be of a cycle before it
            # passed its floor), not the held peak of a move in a dip back into its band.
            if item.score > self.top.score and item.score > self.members.get(item.name, -math.inf):
                self.top = item
            if item.score > self.members.get(item.name, -math.inf):
                self.members[item.name] = item.score
            self.settled.setdefault(item.key, 0)

    def judge(
        self, judged: Mapping[tuple[str, str, str], Moved], threshold: float, cycles: IncidentCycles
    ) -> str | None:
        """Whether the incident goes on (None) or, if it ends this cycle, why; ``judged`` is
        this cycle's series of its target, ``threshold`` the detector's."""
        away = settled = 0
        self.away.clear()
        for key in self.settled:
            item = judged.get(key)
            band = self.before.get(key)
            if item is None or band is None or not beyond(item.signal, item.value, *band):
                self.settled[key] = 0  # back (or gone): the quiet count decides
                continue
            away += 1
            self.settled[key] = 0 if item.fresh >= threshold else self.settled[key] + 1
            if self.settled[key] >= cycles.settle:
                settled += 1
            else:
                self.away.add(key)
        self.quiet = 0 if away else self.quiet + 1
        self.unseen = 0 if any(key in judged for key in self.settled) else self.unseen + 1
        if away and settled == away:
            return (
                f"new normal: its signals held their new level for {cycles.settle} cycles "
                "without the detector scoring them"
            )
        if self.cycles >= cycles.longest:
            return f"longest incident: open for {cycles.longest} cycles"
        if self.quiet >= cycles.quiet and self.unseen >= cycles.quiet:
            if judged:  # the target's other signals have values: it is up
                return (
                    f"no value: its signals have had none for {cycles.quiet} cycles, the "
                    "target's others have (too few requests for a ratio or quantile, or their "
                    "series gone)"
                )
            return (
                f"no value: its signals have had none for {cycles.quiet} cycles, nor have the "
                "target's others (the target down, or its series gone)"
            )
        if self.quiet >= cycles.quiet:
            return f"{BACK}: its signals have been back in their bands for {cycles.quiet} cycles"
        return None


@dataclass(frozen=True)
class Recovery:
    """A target's last incident, ended: until which cycle a series moving back towards the band
    it had before it, and into it (by its floors), is recovering, and those bands."""

    until: int
    before: dict[tuple[str, str, str], Band]

    def covers(
        self, key: tuple[str, str, str], signal: Signal, value: float, left: tuple[float, float]
    ) -> bool:
        """Whether series ``key`` moving to ``value`` out of the band ``left`` is recovering:
        closer to the centre of the band it had before the incident than the band it leaves,
        and inside that band by its floors."""
        band = self.before.get(key)
        if band is None:
            return False
        centre = (band[0] + band[1]) / 2
        closer = abs(value - centre) < abs((left[0] + left[1]) / 2 - centre)
        return closer and not beyond(signal, value, *band)


@dataclass(frozen=True)
class IncidentCycles:
    """How an incident ends: ``quiet`` cycles back, a level held ``settle`` cycles unscored
    (the new normal), ``longest`` cycles at most."""

    quiet: int
    settle: int
    longest: int


#: How the ``ended`` of an incident whose members all came back into their bands begins.
BACK = "back"
#: Alert severities from the least to the most urgent; any other counts as ``warning``.
SEVERITIES = ("info", "warning", "critical")


def severity_rank(severity: str) -> int:
    """Where ``severity`` stands among ``SEVERITIES``."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 1


def member_name(key: tuple[str, str, str]) -> str:
    return key[0] + ("" if key[2] == "{}" else key[2])


def limit_text(signal: Signal, band: Band) -> str:
    """Where a value stops being away from ``band`` (what the alert waits for)."""
    low, high, least = band
    centre = (low + high) / 2
    up, down = max(high, centre + least), min(low, centre - least)
    # A band reaching under 0 that a fall to 0 leaves (``beyond``): any value over 0 is back.
    over_0 = low <= 0.0 < centre - least
    if signal.direction == "up":
        return f"<= {number_text(up)}"
    if signal.direction == "down":
        return "> 0" if over_0 else f">= {number_text(down)}"
    return f"{'over 0' if over_0 else number_text(down)} to {number_text(up)}"


def clamped(signal: Signal, low: float, high: float) -> tuple[float, float]:
    """A band as exported: every signal is 0 or more, a fraction 1 at most."""
    return (
        max(0.0, low) if math.isfinite(low) else low,
        min(1.0, high) if signal.unit == "ratio" else high,
    )


def duration_text(seconds: float) -> str:
    """Seconds as a reader counts them: ``45 s``, ``12 min``, ``3.9 h``, ``7 days``."""
    if not math.isfinite(seconds):
        return str(seconds)
    for unit, size, past in (("days", 86400.0, 2 * 86400.0), ("h", 3600.0, 7200.0)):
        if abs(seconds) >= past:
            return (
                f"{seconds / size:.2g} {unit}"
                if seconds < 10 * size
                else f"{seconds / size:.0f} {unit}"
            )
    if abs(seconds) >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{number_text(seconds)} s"


def words(target: str, top: Moved, started: str, others: list[str]) -> tuple[str, str]:
    """An incident's summary and description: the target, the signal that moved most (its
    value, band and anomaly kind) and the others that moved with it. A signal in seconds
    reaching minutes (a time to full) reads as a duration: "is 3.9 h, expected 7 days", not
    "1.39e+04 seconds, expected 6.048e+05"."""
    # (A latency, under a few seconds, reads as before: "0.466 seconds".)
    ends = [abs(v) for v in (top.value, top.lower, top.upper) if math.isfinite(v)]
    long = top.signal.unit == "seconds" and max(ends, default=0.0) >= 120
    shown = duration_text if long else number_text
    unit = "" if long else f" {top.signal.unit}"
    low, high = shown(top.lower), shown(top.upper)
    expected = low if low == high else f"{low} to {high}"  # not "expected 0 to 0"
    if top.value <= 0.0 and top.lower == 0.0 and top.upper > 0.0:
        # A fall to 0 out of a band reaching under 0 (exported from 0): not "is 0, expected
        # 0 to 15.82", which reads as inside it.
        expected = f"over 0 up to {high}"
    summary = (
        f"{top.name} on {redact_url(target)} is {shown(top.value)}{unit}, "
        f"expected {expected}, since {started}"
    )
    kind = top.kind.replace("_", " ")
    description = (
        f"{top.signal.help}: moved most in this incident ({kind}, score {_score(top.score)})"
    )
    if others:
        description += "; moved with it: " + ", ".join(others)
    return summary, description


#: Past this score ("once in 10^30 points"), rarer means nothing more: a far spike's tail,
#: extrapolated, scores thousands, which reads as a number to compare and is none.
MEANINGFUL_SCORE = 30.0


def _score(score: float) -> str:
    """A score for an alert's words: to three digits, or "over 30" past ``MEANINGFUL_SCORE``."""
    return f"{score:.3g}" if score <= MEANINGFUL_SCORE else f"over {MEANINGFUL_SCORE:g}"


def openers(moved: list[Moved]) -> list[Moved]:
    """The moves that may open an incident this cycle: all of them when a signal without
    ``Signal.alone`` moves (it opens in ``for_cycles``, and the others are its corroboration);
    else those that have lasted their signal's ``alone`` cycles (a busy machine passes through
    a few seconds of a saturated disk or of CPU contention)."""
    if any(m.signal.alone == 0 for m in moved):
        return moved
    return [m for m in moved if m.held >= m.signal.alone]


def number_text(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return "0" if abs(value) < 1e-9 else f"{value:.4g}"  # a band's float dust reads as 0


#: Cycles of a target's history before which an incident is marked young: the detector's
#: averages learn for 200 points, and its bands are rough before a few hundred.
YOUNG_CYCLES = 300


def incident_alert(
    target: str,
    incident: Incident,
    *,
    preset: str,
    labels: Mapping[str, str],
    by_name: Mapping[str, Signal],
    cycles: IncidentCycles,
    ended: str | None = None,
) -> Alert:
    """The alert of ``incident`` on ``target``: labelled ``severity``, ``preset`` and
    ``signal`` (the opener's, so the alert keeps its identity), and ``episode`` after the
    first (a label set Alertmanager does not merge: ``Incident.episode``); its annotations
    name the signal that moved most, its value, band and start, the others, what will end it
    and, on its last cycle (``ended``), what did."""
    top = incident.top
    started = datetime.fromtimestamp(incident.started, UTC).isoformat(timespec="seconds")
    others = sorted(
        (n for n in incident.members if n != top.name), key=lambda n: -incident.members[n]
    )
    summary, description = words(target, top, started, others)
    if incident.history < YOUNG_CYCLES:
        description += (
            f" (opened after {incident.history} cycles of history: the detector was young, "
            "its expected bands rough)"
        )
    waits = [
        f"{member_name(key)} {limit_text(by_name[key[0]], incident.before[key])}"
        for key in incident.settled
        if key in incident.before
    ]
    until = (
        f"{', '.join(waits) or 'its signals back'} (their bands before the incident) for "
        f"{cycles.quiet} cycles; or a new level held {cycles.settle} cycles "
        f"without the detector scoring it (the new normal); or {cycles.longest} cycles"
    )
    extra = {"ended": ended} if ended is not None else {}
    return Alert(
        labels={
            **labels,
            "severity": incident.opener.signal.severity,
            "preset": preset,
            "signal": incident.opener.signal.name,
            **({EPISODE: str(incident.episode)} if incident.episode > 1 else {}),
        },
        annotations={
            "summary": summary,
            "description": description,
            "signal": top.name,
            "kind": top.kind,
            "value": number_text(top.value),
            "expected_lower": number_text(top.lower),
            "expected_upper": number_text(top.upper),
            "started": started,
            "signals": ",".join([top.name, *others]),
            "until": until,
            **extra,
        },
        target=target,
        score=top.score,
    )
