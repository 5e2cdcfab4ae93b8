"""YAML as deucalion reads it: PyYAML's safe loader, refusing a key given twice in a mapping.

PyYAML keeps the last of two equal keys without a word, so a setting written twice (one of them
forgotten further down a file) would silently win or lose. Prometheus reads its files with
``yaml.UnmarshalStrict``, which refuses them too.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["safe_load"]


@cache
def _loader() -> type[Any]:
    # Imported here, not at the top: PyYAML adds 0.9 MB to the application's RSS, and a
    # sidecar configured by its environment and arguments never reads YAML.
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        """A safe loader whose mappings refuse a key they already hold."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *base" merges, and may be overridden by design
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found the key {key!r} twice",
                        key_node.start_mark,
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``, except that a mapping holding a key twice raises
    ``yaml.YAMLError`` saying which key and where."""
    import yaml

    return yaml.load(text, Loader=_loader())  # a SafeLoader subclass: safe
