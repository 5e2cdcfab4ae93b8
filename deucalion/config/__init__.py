"""Configuration: settings from YAML, ``DEUCALION_*`` variables and keyword arguments.

- ``settings``: the pydantic models, one per section.
- ``loading``: ``load_settings``, merging the sources and naming the key and source of an error.
- ``environment``: which ``DEUCALION_*`` variables are settings, and the closest to one that is
  none.
"""

from deucalion.config.loading import load_settings
from deucalion.config.settings import Settings

__all__ = ["Settings", "load_settings"]
