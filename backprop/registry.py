"""One registry mechanism for every kind of part: layers, activations, losses, optimizers,
initializers and schedules.

Each kind's module holds one :class:`Registry` and exposes its ``register``, ``names``,
``classes``, ``class_of`` and ``get``; this class owns what they share: how a name is spelled
(case and ``-`` do not matter), aliases, what a name may imply (``momentum`` is SGD with
momentum 0.9), a class saved under its own ``name`` (what checkpoints write), the refusal of a
name another class holds, and the one-line message for an unknown name. A registry is the only
list of its kind's names: the CLI's choices, the estimators, the playground and checkpoints
read it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import ConfigError


def key_of(name: object) -> str:
    """The spelling a name is registered and looked up under: lower case, ``-`` as ``_``."""
    return str(name).lower().replace("-", "_")


class Registry:
    """Names → entries (classes, or functions for initializers) of one ``kind``.

    Parameters
    ----------
    kind : str
        What the entries are, for messages (``"loss"``, ``"optimizer"``...).
    base : type or None
        Entries must be subclasses of it (None: any callable, as initializers).
    where : str
        The public ``register`` users call, named in the refusal of a wrong entry.
    reserved : names no entry may take (``"auto"``, which the callers resolve themselves).
    also_taken : callable returning names held by another registry (activations and layers
        share the names checkpoints save layers under).
    """

    def __init__(self, kind: str, base: type | None, where: str, *, reserved: Iterable[str] = (),
                 also_taken: Callable[[], Iterable[str]] = tuple) -> None:
        self.kind, self.base, self.where = kind, base, where
        self.reserved, self.also_taken = frozenset(reserved), also_taken
        self._entries: dict[str, tuple[Any, dict[str, Any]]] = {}
        self._aliases: dict[str, str] = {}

    # -- registering -------------------------------------------------------------------
    def register(self, name: str, entry: Any, *, aliases: Iterable[str] = (), **implied: Any) -> None:
        """Add ``entry`` under ``name`` (and ``aliases``); ``implied``: constructor settings
        the name implies. A class that does not set its own ``name`` gets the key."""
        self._check_entry(name, entry)
        key = key_of(name)
        if isinstance(entry, type) and "name" not in vars(entry):
            entry.name = key
        clash = self._clash(key, entry)
        if clash is not None:
            raise ConfigError(f"{self.kind} name {clash!r} is taken by another {self.kind}: give yours "
                              "another name")
        self._entries[key] = (entry, dict(implied))
        self._aliases.update(dict.fromkeys((key_of(a) for a in aliases), key))

    def _check_entry(self, name: str, entry: Any) -> None:
        if self.base is None:
            if not callable(entry):
                raise ConfigError(f"{self.kind} {name!r} must be callable, got {entry!r}")
        elif not (isinstance(entry, type) and issubclass(entry, self.base)):
            raise ConfigError(f"{self.kind} {name!r} must be a subclass of "
                              f"{self.base.__module__}.{self.base.__qualname__}, got {entry!r}")

    def _clash(self, key: str, entry: Any) -> str | None:
        """The name ``entry`` would take from something else: ``key``, or the class's own saved
        ``name``; None when both are free (or already ``entry``'s)."""
        own = getattr(entry, "name", key) if isinstance(entry, type) else key
        others = set(self.also_taken())
        if key in self.reserved or key in self._aliases or key in others:
            return key
        if self._entries.get(key, (entry,))[0] is not entry:
            return key
        if self.classes().get(own, entry) is not entry or own in others:
            return own
        return None

    # -- reading -------------------------------------------------------------------------
    def names(self, *, aliases: bool = False, **capabilities: Any) -> tuple[str, ...]:
        """The names in registration order of the entries with these capabilities (class
        attributes, ``names(full_batch=True)``); ``aliases=True`` adds their aliases."""
        found = tuple(k for k, (entry, _) in self._entries.items()
                      if all(getattr(entry, attr) == value for attr, value in capabilities.items()))
        if not aliases:
            return found
        return (*found, *(a for a, k in self._aliases.items() if k in found))

    def classes(self) -> dict[str, Any]:
        """Every class by its own ``name``: what a checkpoint saves and loads by."""
        return {getattr(entry, "name", key): entry for key, (entry, _) in self._entries.items()}

    def table(self) -> dict[str, Any]:
        """Every name and alias with its entry."""
        return {**{k: e for k, (e, _) in self._entries.items()},
                **{a: self._entries[k][0] for a, k in self._aliases.items()}}

    def entry(self, name: object) -> tuple[Any, dict[str, Any]]:
        """``(entry, implied settings)`` of ``name``, an alias or a class's own saved name."""
        key = key_of(name)
        key = self._aliases.get(key, key)
        if key in self._entries:
            return self._entries[key]
        own = self.classes()
        if isinstance(name, str) and name in own:
            return own[name], {}
        raise ConfigError(f"unknown {self.kind} {name!r}: use one of {', '.join(self.names(aliases=True))}")

    def class_of(self, name: object) -> Any:
        """The entry registered as ``name`` (see :meth:`entry`)."""
        return self.entry(name)[0]

    @contextlib.contextmanager
    def restoring(self) -> Iterator[Registry]:
        """Within the block, registrations are temporary: on leaving it the registry is as it was
        (for tests, and for a script that registers a part for one run)."""
        saved = dict(self._entries), dict(self._aliases)
        try:
            yield self
        finally:
            self._entries, self._aliases = saved
