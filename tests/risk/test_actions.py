"""The steps a runner takes for the guard's actions (shared by the backtester and the live engine)."""

from types import SimpleNamespace

from workbench.risk import ActionKind, GuardAction
from workbench.risk.actions import GUARD_TAG, action_steps, flatten_lots


def _order(side, open_lots, tag=""):
    return SimpleNamespace(side=side, open_lots=open_lots, tag=tag)


def test_actions_expand_to_their_symbols_in_order():
    actions = [GuardAction(ActionKind.CANCEL_ALL, "ETHUSDT", "spread"),
               GuardAction(ActionKind.DISABLE_KEY, None, "kill"),
               GuardAction(ActionKind.FLATTEN, None, "kill")]
    steps = [(a.kind, s, f) for a, s, f in action_steps(actions, ["BTCUSDT", "ETHUSDT"])]
    assert steps == [(ActionKind.CANCEL_ALL, "ETHUSDT", False),
                     (ActionKind.FLATTEN, "BTCUSDT", True), (ActionKind.FLATTEN, "ETHUSDT", True)]


def test_flatten_nets_only_the_guards_orders_in_flight():
    assert flatten_lots(0, []) == 0
    assert flatten_lots(7, []) == -7
    assert flatten_lots(-3, [_order(-1, 5)]) == 3  # the strategy's resting sell is cancelled, not netted
    assert flatten_lots(7, [_order(-1, 4, GUARD_TAG)]) == -3  # a guard sell of 4 is on its way
    assert flatten_lots(7, [_order(-1, 7, GUARD_TAG)]) == 0
    assert flatten_lots(-2, [_order(1, 2, GUARD_TAG), _order(1, 9, "bid")]) == 0
