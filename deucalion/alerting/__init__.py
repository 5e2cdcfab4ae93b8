"""Alerting: from what ``new_data`` returns to alerts in Alertmanager.

- ``alerts``: ``Alert`` and the interpretation of a ``new_data`` result.
- ``lifecycle``: which alerts fire, are re-sent while firing, and resolve.
- ``alertmanager``: the Alertmanager API v2 client, its queues, batches and retries.
"""

from deucalion.alerting.alerts import Alert, Scores, SeriesScore

__all__ = ["Alert", "Scores", "SeriesScore"]
