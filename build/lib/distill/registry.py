"""One small generic registry for every plug-in family (losses, objectives, augmentations, proxies).

A plug-in is filed under a name with a one-line description::

    LOSSES = Registry("output loss")

    @LOSSES.register("kl", "KL divergence between temperature-softened distributions (Hinton et al.)")
    class KLLoss(LogitLoss): ...

``LOSSES.get("nope")`` fails with a plain ``No output loss `nope` registered (known: ...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownComponentError(KeyError, ValueError):
    """Raised when a name is not in a registry; the message lists what is."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered plug-in: its name, what it is, and the object itself."""

    name: str
    description: str
    obj: T


class Registry(Generic[T]):
    """Name → plug-in map that can list itself."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, description: str) -> Callable[[T], T]:
        """Decorator filing ``obj`` under ``name``; a name can be taken only once."""

        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} `{name}` is already registered")
            self._entries[name] = Entry(name, description, obj)
            return obj

        return deco

    def get(self, name: str) -> T:
        """The plug-in called ``name``."""
        try:
            return self._entries[name].obj
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise UnknownComponentError(f"No {self.kind} `{name}` registered (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
