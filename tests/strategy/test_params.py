"""Typed, bounded parameters: conversion, bounds, all-or-nothing changes, each change an event."""

from __future__ import annotations

import math

import pytest

from workbench.exceptions import ConfigError
from workbench.strategy import STRATEGIES, Param, Params

SPEC = (
    Param("window", 20, lo=2, hi=1000),
    Param("k", 3.0, lo=0.1, hi=10.0),
    Param("post_only", True),
    Param("band", "bollinger", choices=("bollinger", "vwap")),
)


def test_defaults_overrides_and_text_values():
    p = Params(SPEC, {"window": "50", "k": 2, "post_only": "false"})
    assert (p.window, p.k, p.post_only, p.band) == (50, 2.0, False, "bollinger")
    assert isinstance(p.k, float) and isinstance(p.window, int)


@pytest.mark.parametrize("values", [
    {"window": 1}, {"window": 2.5}, {"k": math.nan}, {"k": "x"}, {"post_only": 1}, {"band": "keltner"},
    {"nope": 1}, {"window": True},
])
def test_bad_values_are_refused_with_the_reason(values):
    with pytest.raises(ConfigError):
        Params(SPEC, values)


def test_set_is_all_or_nothing_and_returns_the_changes():
    p = Params(SPEC)
    with pytest.raises(ConfigError, match="window"):
        p.set(5, k=2.0, window=0)
    assert p.k == 3.0  # nothing changed
    changes = p.set(7, "slider", k=2.0, window=20)  # window unchanged: no event for it
    assert [(c.ts_ns, c.name, c.old, c.new, c.source) for c in changes] == [(7, "k", 3.0, 2.0, "slider")]
    with pytest.raises(AttributeError):
        p.k = 1.0


def test_every_shipped_strategy_has_valid_defaults_and_documented_parameters():
    for name, cls in STRATEGIES.items():
        s = cls()
        assert s.name == name and cls.__doc__ and len(cls.__doc__.split()) > 40, name
        for prm in cls.params_spec:
            assert prm.doc, f"{name}.{prm.name} has no doc"
            assert prm.check(prm.default) == prm.default
