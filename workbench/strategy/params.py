"""Typed, bounded strategy parameters, changeable while the strategy runs; every change is an event.

A strategy declares its parameters once (a tuple of :class:`Param`); the dashboard builds its sliders from them,
``workbench strategies`` lists them, and :meth:`Params.set` is the only way to change a value: all-or-nothing (one
bad value and nothing changes), returning one :class:`ParamChange` per value that changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from workbench.exceptions import ConfigError

__all__ = ["Param", "ParamChange", "Params"]


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: its type is its default's (int, float, bool, or str with ``choices``)."""

    name: str
    default: int | float | bool | str
    lo: float | None = None
    hi: float | None = None
    step: float | None = None          # a slider's step (display only)
    choices: tuple[str, ...] | None = None
    unit: str = ""                     # "ticks", "lots", "bp", "s", "sigma", ...
    doc: str = ""

    def __post_init__(self) -> None:
        if self.choices is not None and self.default not in self.choices:
            raise ConfigError(f"{self.name}: default {self.default!r} not among {self.choices}")
        if self.choices is None:
            self.check(self.default)

    @property
    def kind(self) -> type:
        return type(self.default)

    def check(self, value):
        """``value`` converted to the parameter's type, or :class:`ConfigError` saying why not."""
        k = self.kind
        if self.choices is not None:
            if value not in self.choices:
                raise ConfigError(f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if k is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be true or false, got {value!r}")
            return value
        if isinstance(value, str):
            try:
                value = k(value) if k is float else int(value)
            except ValueError:
                raise ConfigError(f"{self.name} must be {'a number' if k is float else 'an integer'}, "
                                  f"got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{self.name} must be a number, got {value!r}")
        if k is int:
            if isinstance(value, float) and not value.is_integer():
                raise ConfigError(f"{self.name} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{self.name} must be finite, got {value!r}")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ConfigError(f"{self.name} must be within [{self.lo}, {self.hi}]{' ' + self.unit if self.unit else ''},"
                              f" got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class ParamChange:
    """A parameter changed at ``ts_ns`` (by ``source``: "user", "sweep", "restore", ...)."""

    ts_ns: int
    name: str
    old: object
    new: object
    source: str = "user"


class Params:
    """The current values of a strategy's parameters; read them as attributes (``params.threshold``)."""

    __slots__ = ("spec", "_values")

    def __init__(self, spec: tuple[Param, ...], values: Mapping[str, object] | None = None) -> None:
        object.__setattr__(self, "spec", {p.name: p for p in spec})
        object.__setattr__(self, "_values", {p.name: p.default for p in spec})
        if values:
            self._values.update(self._validated(values))  # raises before anything is kept

    def _validated(self, values: Mapping[str, object]) -> dict:
        out = {}
        for name, v in values.items():
            p = self.spec.get(name)
            if p is None:
                raise ConfigError(f"unknown parameter {name!r} (known: {', '.join(self.spec)})")
            out[name] = p.check(v)
        return out

    def set(self, ts_ns: int, source: str = "user", **values) -> list[ParamChange]:
        """Change values, all or nothing; returns the changes (none for a value equal to the current one)."""
        new = self._validated(values)
        changes = [ParamChange(ts_ns, k, self._values[k], v, source) for k, v in new.items() if self._values[k] != v]
        for c in changes:
            self._values[c.name] = c.new
        return changes

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("parameters change through Params.set(ts_ns, name=value), which records the change")

    def as_dict(self) -> dict[str, object]:
        return dict(self._values)

    def __repr__(self) -> str:
        return "Params(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"
