"""The part of kustomize that deploy/ uses, so that ``make test`` renders every overlay offline.

Debian has no kubectl package (bookworm's ``kubernetes-client`` 1.20 carries a kustomize too old
for Components), so the tests render deploy/ with this subset; where a ``kubectl`` is installed
they also render with ``kubectl kustomize`` and check that both give the same objects, which
keeps this subset honest. Supported: ``resources`` (files and directories), ``components``,
``patches`` (strategic merge by kind and name, lists of named items merged by name),
``labels`` (``pairs``, on metadata only), ``images`` and ``replacements`` (field paths with
``[name=value]`` selectors). Anything else in a kustomization is an error, not ignored.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

_SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "labels",
    "images",
    "replacements",
}


class Unsupported(Exception):
    """The kustomization uses something this subset does not do."""


def _load_objects(path: Path) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(obj: Object) -> tuple[str, str, str]:
    metadata = obj.get("metadata") or {}
    return str(obj.get("kind")), str(metadata.get("namespace", "")), str(metadata.get("name"))


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge of ``patch`` into ``base`` (maps merged, named list items merged)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    named = (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in [*base, *patch])
    )
    if named:
        out_list = [copy.deepcopy(i) for i in base]
        for item in patch:
            match = next((i for i, old in enumerate(out_list) if old["name"] == item["name"]), None)
            if match is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[match] = merge(out_list[match], item)
        return out_list
    return copy.deepcopy(patch)


def _select(node: Any, step: str) -> Any:
    if step.startswith("[") and step.endswith("]"):
        field, _, wanted = step[1:-1].partition("=")
        return next(i for i in node if isinstance(i, dict) and str(i.get(field)) == wanted)
    return node[step]


def _steps(field_path: str) -> list[str]:
    # "a.b.[name=x.y].c": a dot inside brackets is part of the selector.
    steps, current, depth = [], "", 0
    for char in field_path:
        if char == "." and depth == 0:
            steps.append(current)
            current = ""
            continue
        depth += {"[": 1, "]": -1}.get(char, 0)
        current += char
    return [*steps, current]


def _get(obj: Object, field_path: str) -> Any:
    node: Any = obj
    for step in _steps(field_path):
        node = _select(node, step)
    return node


def _set(obj: Object, field_path: str, value: Any) -> None:
    *parents, last = _steps(field_path)
    node: Any = obj
    for step in parents:
        node = _select(node, step)
    node[last] = copy.deepcopy(value)


def _containers(node: Any) -> list[Object]:
    found: list[Object] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                found.extend(c for c in value if isinstance(c, dict))
            else:
                found.extend(_containers(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_containers(item))
    return found


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def _apply_images(objects: list[Object], images: list[Object]) -> None:
    for obj in objects:
        for container in _containers(obj):
            image = str(container.get("image", ""))
            for rule in images:
                if _image_name(image) != rule["name"]:
                    continue
                tag = image[len(_image_name(image)) :]
                name = rule.get("newName", rule["name"])
                if "digest" in rule:
                    tag = "@" + rule["digest"]
                elif "newTag" in rule:
                    tag = f":{rule['newTag']}"
                container["image"] = name + tag


def _matches(obj: Object, select: Object) -> bool:
    kind, namespace, name = _key(obj)
    return (
        select.get("kind", kind) == kind
        and select.get("name", name) == name
        and select.get("namespace", namespace) == namespace
    )


def _apply(kustomization: Object, objects: list[Object], directory: Path) -> list[Object]:
    unknown = set(kustomization) - _SUPPORTED
    if unknown:
        raise Unsupported(f"{directory}: {sorted(unknown)}")
    for component in kustomization.get("components") or ():
        objects = _build(directory / component, objects)
    for patch in kustomization.get("patches") or ():
        if set(patch) != {"path"}:
            raise Unsupported(f"{directory}: patch {patch}")
        for change in _load_objects(directory / patch["path"]):
            targets = [
                i
                for i, o in enumerate(objects)
                if _key(o)[0] == change["kind"] and _key(o)[2] == change["metadata"]["name"]
            ]
            if len(targets) != 1:
                raise Unsupported(f"{directory}: patch {patch['path']} matches {len(targets)}")
            objects[targets[0]] = merge(objects[targets[0]], change)
    for group in kustomization.get("labels") or ():
        if set(group) != {"pairs"}:
            raise Unsupported(f"{directory}: labels {group}")
        for obj in objects:
            obj.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    _apply_images(objects, kustomization.get("images") or [])
    for replacement in kustomization.get("replacements") or ():
        source = replacement["source"]
        [origin] = [o for o in objects if _matches(o, source)]
        value = _get(origin, source["fieldPath"])
        for target in replacement["targets"]:
            for obj in objects:
                if _matches(obj, target["select"]):
                    for field_path in target["fieldPaths"]:
                        _set(obj, field_path, value)
    return objects


def _build(directory: Path, objects: list[Object]) -> list[Object]:
    [kustomization] = _load_objects(directory / "kustomization.yaml")
    objects = list(objects)
    for entry in kustomization.get("resources") or ():
        path = directory / entry
        objects += build(path) if path.is_dir() else _load_objects(path)
    return _apply(kustomization, objects, directory)


def build(directory: Path) -> list[Object]:
    """The objects ``kustomize build directory`` would print (in no particular order)."""
    return _build(directory, [])


def by_key(objects: list[Object]) -> dict[tuple[str, str, str], Object]:
    """Objects keyed by (kind, namespace, name), for comparing renderings."""
    keyed = {_key(o): o for o in objects}
    assert len(keyed) == len(objects), "two objects with the same kind, namespace and name"
    return keyed
