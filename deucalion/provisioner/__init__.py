"""The provisioner: ``MetricsProvisioner`` and the one cycle loop it runs.

- ``provisioner``: ``MetricsProvisioner``: register observers and listeners; run, start, stop;
  supervision of every long-lived task;
- ``cycle``: the cycle (discover, collect, hand on) at a fixed rate, ``CycleStats``, and what a
  ``CycleListener`` is;
- ``observers``: ``ObserverFeed``, the listener that hands each observer its samples and turns
  its results into alerts and scores.
"""

from __future__ import annotations

from deucalion.provisioner.cycle import CollectedCycle, CycleListener, CycleStats
from deucalion.provisioner.provisioner import MetricsProvisioner

__all__ = ["CollectedCycle", "CycleListener", "CycleStats", "MetricsProvisioner"]
