"""The order state machine: progress only, out-of-order reports, cancels in flight, client order ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.strategy.orders import OrderBook, OrderState
from workbench.venue.api import OrderType, TimeInForce

S = OrderState


def submit(book: OrderBook, qty: int = 10):
    return book.submit("BTCUSDT", 1, OrderType.LIMIT, qty, 100, TimeInForce.GTC, 0)


def test_ids_are_unique_and_prefixed():
    b = OrderBook("run7")
    ids = [submit(b).client_order_id for _ in range(3)]
    assert ids == ["run71", "run72", "run73"]
    with pytest.raises(ConfigError):
        b.submit("BTCUSDT", 1, OrderType.LIMIT, 1, 1, TimeInForce.GTC, 0, client_order_id="run71")
    for bad in ("", "has space", "x" * 21):
        with pytest.raises(ConfigError):
            OrderBook(bad)


def test_the_happy_path_and_history():
    b = OrderBook()
    o = submit(b)
    assert o.state is S.PENDING_NEW and b.open_orders() == [o]
    assert b.apply(o.client_order_id, S.NEW, 5, order_id=42) is o and o.order_id == 42
    b.apply(o.client_order_id, S.PARTIALLY_FILLED, 6, filled_lots=4, quote_filled=400, fee_units=3)
    assert (o.state, o.filled_lots, o.open_lots, o.fee_units, o.avg_px_ticks) == (S.PARTIALLY_FILLED, 4, 6, 3, 100)
    b.apply(o.client_order_id, S.FILLED, 7, filled_lots=10, quote_filled=1000, fee_units=5)
    assert o.state is S.FILLED and o.open_lots == 0 and o.fee_units == 8 and b.open_orders() == []
    assert [st for _, st in o.history] == [S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED, S.FILLED]


def test_a_fill_report_overtaking_the_ack_and_a_late_ack():
    b = OrderBook()
    o = submit(b)
    b.apply(o.client_order_id, S.PARTIALLY_FILLED, 5, filled_lots=3)
    assert b.apply(o.client_order_id, S.NEW, 6, order_id=9) is o  # the id is learnt, the state does not go back
    assert o.state is S.PARTIALLY_FILLED and o.order_id == 9
    assert b.apply(o.client_order_id, S.PARTIALLY_FILLED, 7, filled_lots=2) is None  # an older report: no change
    assert o.filled_lots == 3


def test_cancel_in_flight_crossing_a_fill_and_a_refused_cancel():
    b = OrderBook()
    o = submit(b)
    b.apply(o.client_order_id, S.NEW, 1, order_id=1)
    assert b.cancel_sent(o.client_order_id, 2) is o and o.state is S.PENDING_CANCEL
    assert b.cancel_sent(o.client_order_id, 3) is None  # already in flight: nothing to send
    b.apply(o.client_order_id, S.PARTIALLY_FILLED, 4, filled_lots=5)
    assert o.state is S.PENDING_CANCEL and o.filled_lots == 5  # still waiting for the cancel's answer
    assert b.cancel_rejected(o.client_order_id, 5) is o and o.state is S.PARTIALLY_FILLED
    b.cancel_sent(o.client_order_id, 6)
    b.apply(o.client_order_id, S.CANCELED, 7)
    assert o.state is S.CANCELED and b.cancel_sent(o.client_order_id, 8) is None
    assert b.apply(o.client_order_id, S.FILLED, 9, filled_lots=10) is o  # a fill reported late still counts...
    assert o.state is S.CANCELED and o.filled_lots == 10  # ...but the terminal state is final


def test_rejections_and_unknown_ids():
    b = OrderBook()
    o = submit(b)
    b.apply(o.client_order_id, S.REJECTED, 1, reason="Filter failure: LOT_SIZE")
    assert o.state is S.REJECTED and o.reason == "Filter failure: LOT_SIZE" and not b.open_orders()
    assert b.apply("not-ours", S.NEW, 1) is None and b.cancel_sent("not-ours", 1) is None


_states = st.sampled_from([S.NEW, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED])


@given(st.lists(st.tuples(_states, st.integers(0, 10), st.booleans()), max_size=30))
def test_any_report_sequence_only_moves_forward(reports):
    b = OrderBook()
    o = submit(b)
    filled, terminal = 0, None
    for state, lots, cancel in reports:
        if cancel:
            b.cancel_sent(o.client_order_id, 0)
        b.apply(o.client_order_id, state, 0, filled_lots=lots)
        assert o.filled_lots >= filled  # filled size never shrinks
        filled = o.filled_lots
        if terminal is not None:
            assert o.state is terminal  # a terminal state is final
        elif o.state.is_terminal:
            terminal = o.state
        assert (o in b.open_orders()) == (not o.state.is_terminal)
