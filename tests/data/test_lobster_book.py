"""Issue 2's LOBSTER check: the book replays the message file exactly where a level-1 file allows it."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.book.book import L2Book
from workbench.data.lobster import iter_lobster_messages, iter_lobster_orderbook
from workbench.data.lobster_book import check_level1, level1_rows, transition_rows
from workbench.enums import F_BATCH_END, K_ORDER_ADD, K_ORDER_CANCEL, K_ORDER_DELETE, K_ORDER_EXEC, K_ORDER_EXEC_HIDDEN
from workbench.types import event_dt

AMZN = "lobster/AMZN_2012-06-21_34200000_57600000_{}_1.csv"


@pytest.fixture(scope="module")
def amzn(shared_data):
    ev = np.concatenate(list(iter_lobster_messages(shared_data / AMZN.format("message"))))
    exp = np.concatenate(list(iter_lobster_orderbook(shared_data / AMZN.format("orderbook"))))
    return ev, exp


def test_every_non_emptying_message_gives_the_next_row_exactly(amzn):
    ev, exp = amzn
    ours = level1_rows(L2Book(), ev)
    c = check_level1(ours, exp, ev)
    assert c.rows == 57_515
    assert c.transitions == 43_561 and c.emptying == 13_953  # the two add up to every message after the first
    assert c.transitions + c.emptying == c.rows - 1
    assert c.transitions_exact == c.transitions  # 100 %
    # free-running from messages alone: in sync only where the file reveals nothing the book could not know
    assert c.rows_in_sync == 2_094
    print(c.summary())


def test_free_running_replay_never_crosses_and_counts_what_it_could_not_know(amzn):
    ev, _ = amzn
    book = L2Book()
    rows = level1_rows(book, ev)
    both = (rows[:, 1] > 0) & (rows[:, 3] > 0)
    assert not np.any(rows[both, 2] >= rows[both, 0])
    assert book.n_crossed == 0 and book.n_uncrossed > 0 and book.n_clamped > 0


def make(rows):
    ev = np.zeros(len(rows), event_dt)
    for i, (k, s, p, q) in enumerate(rows):
        ev[i]["kind"], ev[i]["side"], ev[i]["px_ticks"], ev[i]["qty_lots"] = k, s, p, q
    ev["flags"] = F_BATCH_END
    return ev


def test_transition_check_on_a_hand_made_file():
    # rows: ask px, ask sz, bid px, bid sz after each message
    ev = make([
        (K_ORDER_ADD, 1, 100, 5),        # bid 100x5 (ask side unknown: empty)
        (K_ORDER_ADD, -1, 103, 2),       # ask 103x2
        (K_ORDER_ADD, 1, 100, 1),        # bid 100x6
        (K_ORDER_CANCEL, 1, 100, 2),     # bid 100x4
        (K_ORDER_EXEC_HIDDEN, 1, 101, 9),  # nothing visible
        (K_ORDER_EXEC, -1, 103, 2),      # empties the ask: the file shows the level behind (105x7)
        (K_ORDER_DELETE, -1, 105, 7),    # empties again: the file shows 106x1
        (K_ORDER_ADD, -1, 104, 3),       # a better ask: known again
    ])
    exp = np.array([
        [9_999_999_999, 0, 100, 5], [103, 2, 100, 5], [103, 2, 100, 6], [103, 2, 100, 4], [103, 2, 100, 4],
        [105, 7, 100, 4], [106, 1, 100, 4], [104, 3, 100, 4],
    ])
    ours = level1_rows(L2Book(), ev)
    c = check_level1(ours, exp, ev)
    assert c.emptying == 2 and c.transitions == 5 and c.transitions_exact == 5
    # after the first emptying the free-running book cannot know 105x7, until the new ask at 104
    assert ours[5].tolist() == [9_999_999_999, 0, 100, 4] and ours[7].tolist() == [104, 3, 100, 4]
    assert c.rows_in_sync == 6
    np.testing.assert_array_equal(transition_rows(ev, exp)[1:5], exp[1:5])


def test_lengths_must_agree():
    ev = make([(K_ORDER_ADD, 1, 100, 5)])
    with pytest.raises(ValueError, match="lengths"):
        check_level1(np.zeros((2, 4), np.int64), np.zeros((1, 4), np.int64), ev)
    assert check_level1(np.zeros((0, 4), np.int64), np.zeros((0, 4), np.int64), ev[:0]).rows == 0
