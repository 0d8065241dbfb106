"""Deep merge of layer trees, with list semantics, provenance tracing and conflict detection.

Rules (lowest layer first, each higher layer merged onto the result so far):

- mapping onto mapping merges key by key; anything else replaces the lower value;
- a list replaces the lower list unless a mode is declared for its path (``merge:`` in
  ``defaults.yaml``) or written inline (``{$merge: append, $items: [...]}``): ``append`` adds
  the items after the lower ones; ``{by: KEY}`` deep-merges items with the same KEY value and
  appends the others;
- markers (templates, secret references) are leaves.

:func:`merge_tree` is the fast path used for every render. :func:`trace_stack` does the same
merge while recording every :class:`~rollwave.config.model.Setting` (used by ``explain`` and for
locating schema errors); tests check that both give the same values. Nothing is mutated: results
share unchanged subtrees with their inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rollwave.config.compile import _hashable_key, declared_mode, mode_child
from rollwave.config.model import (
    ITEMS_MARKER,
    REPLACE,
    Layer,
    ListOp,
    MergeMode,
    ModeTree,
    SecretRef,
    Setting,
    Template,
)
from rollwave.yamlio import JsonPath

_MISSING: Any = object()


# --- fast path --------------------------------------------------------------------------------


def materialize(node: Any) -> Any:
    """Turn inline list markers into plain lists (only needed for layers that have them)."""
    kind = type(node)
    if kind is dict:
        return {key: materialize(value) for key, value in node.items()}
    if kind is list:
        return [materialize(item) for item in node]
    if kind is ListOp:
        return [materialize(item) for item in node.items]
    return node


def merge_tree(base: Any, top: Any, modes: ModeTree | None, has_ops: bool) -> Any:
    """``top`` merged onto ``base`` (see the module docstring for the rules)."""
    kind = type(top)
    if kind is dict:
        if type(base) is not dict:
            return materialize(top) if has_ops else top
        out = base.copy()
        for key, value in top.items():
            lower = out.get(key, _MISSING)
            sub = mode_child(modes, key) if modes else None
            if lower is _MISSING:
                out[key] = materialize(value) if has_ops else value
            else:
                out[key] = merge_tree(lower, value, sub, has_ops)
        return out
    if kind is ListOp:
        return _apply_list(base, top.items, top.mode, modes, has_ops)
    if kind is list:
        mode = declared_mode(modes) if modes else REPLACE
        if mode.kind == "replace" or type(base) is not list:
            return materialize(top) if has_ops else top
        return _apply_list(base, top, mode, modes, has_ops)
    return top


def _apply_list(base: Any, items: list[Any], mode: MergeMode, modes: ModeTree | None,
                has_ops: bool) -> list[Any]:
    if type(base) is not list or mode.kind == "replace":
        return [materialize(item) for item in items] if has_ops else items
    if mode.kind == "append":
        return [*base, *(materialize(item) for item in items)] if has_ops else [*base, *items]
    key = mode.key
    out = list(base)
    index = {_hashable_key(item[key]): pos for pos, item in enumerate(out)
             if type(item) is dict and key in item}
    item_modes = mode_child(modes, 0) if modes else None
    for item in items:
        found = index.get(_hashable_key(item[key])) if type(item) is dict and key in item else None
        if found is None:
            if type(item) is dict and key in item:
                index[_hashable_key(item[key])] = len(out)
            out.append(materialize(item) if has_ops else item)
        else:
            out[found] = merge_tree(out[found], item, item_modes, has_ops)
    return out


def merge_stack(layers: Sequence[Layer], modes: ModeTree | None,
                base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``layers`` (lowest first) onto ``base`` (default: empty)."""
    tree: dict[str, Any] = base if base is not None else {}
    for layer in layers:
        tree = merge_tree(tree, layer.tree, modes, layer.has_ops)
    return tree


# --- tracing ----------------------------------------------------------------------------------


def written(node: Any) -> Any:
    """A tree node as the user wrote it (template source, secret reference, inline lists)."""
    kind = type(node)
    if kind is dict:
        return {key: written(value) for key, value in node.items()}
    if kind is list:
        return [written(item) for item in node]
    if kind is ListOp:
        return [written(item) for item in node.items]
    if kind is Template:
        return node.source
    if kind is SecretRef:
        return node.written()
    return node


class _Tracer:
    def __init__(self) -> None:
        self.settings: dict[JsonPath, list[Setting]] = {}

    def add(self, path: JsonPath, layer: Layer, local: JsonPath, value: Any, action: str) -> None:
        setting = Setting(layer=layer.label, file=layer.file, line=layer.line_of(local),
                          value=written(value), action=action)
        self.settings.setdefault(path, []).append(setting)

    def clear_below(self, path: JsonPath) -> None:
        size = len(path)
        for key in [k for k in self.settings if len(k) > size and k[:size] == path]:
            del self.settings[key]

    def leaves(self, node: Any, path: JsonPath, layer: Layer, *, local: JsonPath,
               action: str, modes: ModeTree | None) -> None:
        """Record every leaf of a new subtree (items of lists merged by key one by one)."""
        kind = type(node)
        if kind is dict and node:
            for key, value in node.items():
                self.leaves(value, (*path, key), layer, local=(*local, key), action=action,
                            modes=mode_child(modes, key))
            return
        items, mode, where = ((node.items, node.mode, (*local, ITEMS_MARKER)) if kind is ListOp
                              else (node, declared_mode(modes), local))
        if (kind is list or kind is ListOp) and items and mode.kind == "by":
            for index, item in enumerate(items):
                self.leaves(item, (*path, index), layer, local=(*where, index), action=action,
                            modes=mode_child(modes, index))
            return
        self.add(path, layer, local, node, action)

    def merge(self, base: Any, top: Any, modes: ModeTree | None, layer: Layer, *,
              path: JsonPath, local: JsonPath) -> Any:
        kind = type(top)
        if kind is dict:
            if type(base) is not dict:
                if base is not _MISSING:
                    self.clear_below(path)
                self.leaves(top, path, layer, local=local, modes=modes,
                            action="set" if base is _MISSING else "override")
                return materialize(top)
            out = base.copy()
            for key, value in top.items():
                out[key] = self.merge(out.get(key, _MISSING), value, mode_child(modes, key),
                                      layer, path=(*path, key), local=(*local, key))
            return out
        if kind is ListOp:
            return self.list(base, top.items, top.mode, modes, layer=layer, path=path,
                             local=(*local, ITEMS_MARKER))
        if kind is list:
            mode = declared_mode(modes)
            if mode.kind != "replace" and type(base) is list:
                return self.list(base, top, mode, modes, layer=layer, path=path, local=local)
            self.clear_below(path)
            self.leaves(top, path, layer, local=local, modes=modes,
                        action="set" if base is _MISSING else "override")
            return materialize(top)
        if base is not _MISSING:
            self.clear_below(path)
        self.add(path, layer, local, top, "set" if base is _MISSING else "override")
        return top

    def list(self, base: Any, items: list[Any], mode: MergeMode, modes: ModeTree | None, *,
             layer: Layer, path: JsonPath, local: JsonPath) -> list[Any]:
        if type(base) is not list or mode.kind == "replace":
            self.clear_below(path)
            action = "set" if base is _MISSING else "override"
            if mode.kind == "by" and items:
                for pos, item in enumerate(items):
                    self.leaves(item, (*path, pos), layer, local=(*local, pos),
                                action=action, modes=mode_child(modes, pos))
            else:
                self.add(path, layer, local[:-1] if local[-1:] == (ITEMS_MARKER,) else local,
                         items, action)
            return [materialize(item) for item in items]
        if mode.kind == "append":
            self.add(path, layer, local[:-1] if local[-1:] == (ITEMS_MARKER,) else local, items,
                     "append")
            return [*base, *(materialize(item) for item in items)]
        key = mode.key
        out = list(base)
        index = {_hashable_key(item[key]): pos for pos, item in enumerate(out)
                 if type(item) is dict and key in item}
        item_modes = mode_child(modes, 0)
        for pos, item in enumerate(items):
            keyed = type(item) is dict and key in item
            found = index.get(_hashable_key(item[key])) if keyed else None
            if found is None:
                if keyed:
                    index[_hashable_key(item[key])] = len(out)
                self.leaves(item, (*path, len(out)), layer, local=(*local, pos), action="set",
                            modes=item_modes)
                out.append(materialize(item))
            else:
                out[found] = self.merge(out[found], item, item_modes, layer, path=(*path, found),
                                        local=(*local, pos))
        return out


def trace_stack(layers: Sequence[Layer], modes: ModeTree | None,
                ) -> tuple[dict[str, Any], dict[JsonPath, tuple[Setting, ...]]]:
    """Like :func:`merge_stack` but also returns every setting of every surviving key path."""
    tracer = _Tracer()
    tree: dict[str, Any] = {}
    for layer in layers:
        tree = tracer.merge(tree, layer.tree, modes, layer, path=(), local=())
    return tree, {path: tuple(found) for path, found in tracer.settings.items()}


# --- equal-rank conflicts -----------------------------------------------------------------------


Conflict = tuple[JsonPath, JsonPath, JsonPath]
"""(path in the merged config, path in the first layer, path in the second layer)."""


def same(left: Any, right: Any) -> bool:
    """Deep equality that tells ``1`` from ``true`` and ``1`` from ``1.0``."""
    if type(left) is not type(right):
        return False
    if type(left) is dict:
        return left.keys() == right.keys() and all(same(v, right[k]) for k, v in left.items())
    if type(left) is list:
        return len(left) == len(right) and all(map(same, left, right))
    if type(left) is ListOp:
        return left.mode == right.mode and same(left.items, right.items)
    return bool(left == right)


def _as_list(node: Any, modes: ModeTree | None, local: JsonPath,
             ) -> tuple[MergeMode, list[Any], JsonPath] | None:
    if type(node) is ListOp:
        return node.mode, node.items, (*local, ITEMS_MARKER)
    if type(node) is list:
        return declared_mode(modes), node, local
    return None


def find_conflicts(first: Any, second: Any, modes: ModeTree | None) -> list[Conflict]:
    """Key paths two layers of equal rank both set, to different values.

    Mappings are compared key by key; lists in ``append`` mode never conflict; lists merged
    ``by`` a key are compared item by item.
    """
    found: list[Conflict] = []
    _conflicts(first, second, modes, path=(), lpath=(), rpath=(), found=found)
    return found


def _conflicts(left: Any, right: Any, modes: ModeTree | None, *, path: JsonPath,
               lpath: JsonPath, rpath: JsonPath, found: list[Conflict]) -> None:
    if type(left) is dict and type(right) is dict:
        for key in sorted(left.keys() & right.keys()):
            _conflicts(left[key], right[key], mode_child(modes, key), path=(*path, key),
                       lpath=(*lpath, key), rpath=(*rpath, key), found=found)
        return
    lhs, rhs = _as_list(left, modes, lpath), _as_list(right, modes, rpath)
    if lhs is not None and rhs is not None:
        (lmode, litems, lloc), (rmode, ritems, rloc) = lhs, rhs
        if lmode.kind == rmode.kind == "append":
            return
        if lmode.kind == rmode.kind == "by" and lmode.key == rmode.key:
            _keyed_conflicts(litems, ritems, lmode.key or "", mode_child(modes, 0), path=path,
                             lloc=lloc, rloc=rloc, found=found)
            return
    if not same(left, right):
        found.append((path, lpath, rpath))


def _keyed_conflicts(left: list[Any], right: list[Any], key: str, modes: ModeTree | None, *,
                     path: JsonPath, lloc: JsonPath, rloc: JsonPath,
                     found: list[Conflict]) -> None:
    def index(items: list[Any]) -> dict[Any, tuple[int, Any]]:
        return {_hashable_key(item[key]): (pos, item) for pos, item in enumerate(items)
                if type(item) is dict and key in item}

    rindex = index(right)
    for hashed, (lpos, item) in index(left).items():
        other = rindex.get(hashed)
        if other is not None:
            label = f"{path[-1] if path else ''}[{key}={written(item[key])}]"
            _conflicts(item, other[1], modes, path=(*path[:-1], label), lpath=(*lloc, lpos),
                       rpath=(*rloc, other[0]), found=found)


def walk_declared_lists(tree: Any, modes: ModeTree | None, path: JsonPath,
                        visit: Callable[[list[Any], MergeMode, JsonPath], None]) -> None:
    """Call ``visit`` for every plain list in ``tree`` whose path declares a ``by`` mode."""
    if not modes:
        return
    if type(tree) is dict:
        for key, value in tree.items():
            walk_declared_lists(value, mode_child(modes, key), (*path, key), visit)
    elif type(tree) is list:
        mode = declared_mode(modes)
        if mode.kind == "by":
            visit(tree, mode, path)
        for pos, item in enumerate(tree):
            walk_declared_lists(item, mode_child(modes, pos), (*path, pos), visit)
