"""The risk guard: outside the strategy, the same object in backtest and live, checked on every order and tick.

Sans-I/O: the runner feeds it what happened (``on_book``, ``on_fill``, ``on_mark``, ``on_rate``, ``tick``) with the
time passed in, asks it about every order (``check_order`` returns a :class:`Verdict`, never raises for a
rejection), and carries out what it asks for (``drain_actions``: cancel, flatten, disable the key). Every trip,
recovery and state change is a :class:`RiskEvent` (``drain_events``) for the journal and the dashboard.

Units: prices in integer ticks, sizes and positions in integer lots, equity in integer quote notional units
(tick x lot), time in int64 ns (the UTC day is ``ts_ns // 86_400e9``). Sides are +1 (buy) and -1 (sell).

Rules (defaults in :class:`~workbench.risk.config.RiskConfig`):

==================  ==============================================  ==================================================
rule                trips when                                      then
==================  ==============================================  ==================================================
``trade_stop``      the price that would exit a position (best bid  CANCEL_ALL + FLATTEN that symbol; the symbol is
                    for a long, best ask for a short) is            reduce-only until flat; state unchanged
                    ``trade_stop_ticks`` worse than its average
                    entry (exact: the average is kept as a ratio)
``daily_drawdown``  equity <= (1 - 1.5 %) x the UTC day's peak      HALT: CANCEL_ALL + FLATTEN all, block
``hourly_loss``     equity <= (1 - 2 %) x the oldest mark of the    HALT as above, and DISABLE_KEY
                    last 3600 s
``spread``          spread > 3 x its rolling 60 s median (>= 20     REDUCING until the spread is back within; a
                    samples), or the book is one-sided              one-sided book counts as widened
``stale``           > 300 ms since a symbol's last book update      REDUCING and CANCEL_ALL that symbol, until its
                    (``tick`` and ``check_order`` look)             next book update
``concentration``   |position after an order| > 10 % of the depth   the order is resized down to fit (or rejected)
                    that would absorb its exit
``api_rate``        any limit's count >= 90 % of its limit          orders that do not reduce exposure are rejected
                                                                    while over; an event on each crossing; state
                                                                    unchanged
``kill``            :meth:`RiskGuard.kill`                          HALT: CANCEL_ALL + FLATTEN all, block; idempotent
==================  ==============================================  ==================================================

States: ACTIVE; REDUCING (a pause is on: only orders that reduce exposure pass); HALTED (latched until a human
calls :meth:`RiskGuard.resume`: strategy orders never pass, the guard's own flatten orders pass if they reduce).
An order *reduces exposure* when it is opposite in sign to the position and no larger than it; such an order is
never resized and never blocked, except a strategy's order while HALTED.

Actions come in the order to carry them out. FLATTEN means "bring the position to zero with reducing orders sent
with ``source="guard"``"; a runner that already has flatten orders working ignores a repeat (the guard knows
positions from fills, not orders in flight, so two flatten orders in flight could each pass). DISABLE_KEY comes
last: once the cancels and the flatten are done, the client signs nothing more with the key until a human enables
it again (:meth:`RiskGuard.resume` does not).
"""

from __future__ import annotations

import operator
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from fractions import Fraction
from itertools import islice
from math import gcd, inf

from workbench.exceptions import ConfigError
from workbench.risk.config import RiskConfig

__all__ = [
    "GuardState", "ActionKind", "GuardAction", "RiskEvent", "Verdict", "RiskGuard", "RULES",
    "TRADE_STOP", "DAILY_DRAWDOWN", "HOURLY_LOSS", "SPREAD", "STALE", "CONCENTRATION", "API_RATE", "KILL",
    "RESUME", "INVALID",
]

DAY_NS = 86_400_000_000_000
HOUR_NS = 3_600_000_000_000
SECOND_NS = 1_000_000_000

# Rule names: RiskEvent.rule, Verdict.rule and the keys of RiskGuard.breakers().
TRADE_STOP = "trade_stop"
DAILY_DRAWDOWN = "daily_drawdown"
HOURLY_LOSS = "hourly_loss"
SPREAD = "spread"
STALE = "stale"
CONCENTRATION = "concentration"
API_RATE = "api_rate"
KILL = "kill"
RULES = (TRADE_STOP, DAILY_DRAWDOWN, HOURLY_LOSS, SPREAD, STALE, CONCENTRATION, API_RATE, KILL)
RESUME = "resume"      # the event of a lifted halt
INVALID = "invalid"    # a malformed order (side not +-1, size not a positive integer)


# -- the reasons' words, one writer each: the guard below and the compiled guard's log
# (workbench.risk.compiled.events_from_log) both write them here, from the same numbers
def _why_drawdown(dd: float, lim: float, peak: int, eq: int) -> str:
    return f"daily drawdown {dd * 100:.2f} % >= {lim * 100:.2f} % from the day's peak {peak:,} (equity {eq:,})"


def _why_hourly(loss: float, lim: float, eq: int, ref: int, age_ns: int) -> str:
    return (f"loss over the last hour {loss * 100:.2f} % >= {lim * 100:.2f} % "
            f"(equity {eq:,} vs {ref:,} {age_ns / 1e9:.0f} s ago)")


def _why_stale(name: str, had_book: bool, age: int, stale_ns: int) -> str:
    what = "no book update" if had_book else "no book yet"
    return f"{name}: {what} for {age / 1e6:.1f} ms > {stale_ns / 1e6:.1f} ms"


def _why_fresh(name: str, age: int) -> str:
    return f"{name}: book updated after {age / 1e6:.1f} ms"


def _why_one_sided(name: str, bid: int | None, ask: int | None) -> str:
    return f"{name}: one-sided book (bid {bid}, ask {ask})"


def _why_widened(name: str, spread: int, x: float, median, ratio: float) -> str:
    return f"{name}: spread {spread} ticks > {x:g} x its median {median:g} ticks ({ratio:.2f} x)"


def _why_narrowed(name: str, spread: int, x: float, med) -> str:
    return f"{name}: spread {spread} ticks back within {x:g} x its median {'%g' % med if med else 'n/a'} ticks"


def _why_stopped(name: str, pos: int, px: int, adverse: float, avg: float, stop: int) -> str:
    if pos > 0:
        what, word = f"long {pos} lots: best bid {px}", "below"
    else:
        what, word = f"short {-pos} lots: best ask {px}", "above"
    return f"{name} {what} is {adverse:g} ticks {word} the average entry {avg:,.2f} (stop {stop} ticks)"


def _why_concentrated(name: str, after_abs: int, frac: float, side: int, depth: int, cap: int) -> str:
    book_side = "bid" if side > 0 else "ask"
    return (f"{name}: |position| after the order {after_abs} lots > {frac * 100:g} % of the "
            f"{book_side} depth {depth} lots (cap {cap})")


class GuardState(IntEnum):
    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


class ActionKind(IntEnum):
    CANCEL_ALL = 1   # cancel resting orders (of ``symbol``, or all)
    FLATTEN = 2      # bring the position(s) to zero with reducing orders, source="guard"
    DISABLE_KEY = 3  # stop using the API key once cancels and flatten are done


@dataclass(frozen=True, slots=True)
class GuardAction:
    """Something the runner must do; ``symbol`` None means every symbol."""

    kind: ActionKind
    symbol: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """A trip, a recovery or a state change (``state_from == state_to`` when the state did not change).

    ``value`` and ``threshold`` are in the rule's unit: fractions for drawdown, loss, concentration and rate,
    ticks for the trade stop, a multiple of the median for the spread, ns for staleness.
    """

    ts_ns: int
    rule: str
    state_from: GuardState
    state_to: GuardState
    reason: str
    value: float
    threshold: float


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one order: ``allowed`` with ``qty_lots`` (<= the size asked; smaller when resized), or not
    (``qty_lots`` 0); ``rule`` and ``reason`` say which rule rejected or resized it ("" when it passed whole)."""

    allowed: bool
    qty_lots: int
    rule: str = ""
    reason: str = ""


class _Sym:
    """What the guard knows of one symbol."""

    __slots__ = ("name", "pos", "num", "den", "stop_px", "stopped", "bid", "ask", "bid_depth", "ask_depth",
                 "last_book_ns", "seen_ns", "stale", "wide", "spread", "median", "samples", "ordered",
                 "next_sample_ns")

    def __init__(self, name: str, seen_ns: int | None) -> None:
        self.name = name
        self.pos = 0                 # lots, signed
        self.num, self.den = 0, 1    # average entry = num / den ticks, exact (meaningful while pos != 0)
        self.stop_px: int | None = None  # long: stop when bid <= stop_px; short: when ask >= stop_px
        self.stopped = False         # the trade stop tripped; reduce-only until flat
        self.bid: int | None = None
        self.ask: int | None = None
        self.bid_depth = 0
        self.ask_depth = 0
        self.last_book_ns: int | None = None
        self.seen_ns = seen_ns       # staleness of a symbol that never had a book counts from here
        self.stale = False
        self.wide = False
        self.spread: int | None = None
        self.median: float | None = None  # None until spread_min_samples samples are in the window
        self.samples: deque = deque()     # (ts_ns, spread_ticks), oldest first
        self.ordered: list[int] = []      # the same spreads, sorted: the median is an index away
        self.next_sample_ns = -(2**63)

    def avg_entry(self) -> float | None:
        return self.num / self.den if self.pos else None

    def adverse_ticks(self) -> float:
        """How far the exit price is worse than the average entry (negative: in profit); 0 when flat or unpriced."""
        if self.pos > 0 and self.bid is not None:
            return self.num / self.den - self.bid
        if self.pos < 0 and self.ask is not None:
            return self.ask - self.num / self.den
        return 0.0


class RiskGuard:
    """The circuit breakers of one account. See the module docstring for the rules and the runner's contract.

    Parameters
    ----------
    config : the limits.
    symbols : symbols known from the start (so ``tick`` sees one that never gets a book as stale); others are
        added the first time any call names them.
    """

    def __init__(self, config: RiskConfig = RiskConfig(), symbols: tuple[str, ...] = ()) -> None:
        if not isinstance(config, RiskConfig):
            raise ConfigError(f"config must be a RiskConfig, got {type(config).__name__}")
        self.config = config
        # the limits as plain attributes: the hot paths read them without a second lookup
        self._x = float(config.spread_widen_x)
        self._window_ns = config.spread_window_ns
        self._sample_ns = config.spread_sample_ns
        self._min_samples = config.spread_min_samples
        self._stale_ns = config.stale_after_ns
        self._depth_frac = float(config.max_depth_frac)
        # the fraction as written (0.29 -> 29/100): in floats 0.29 x 100 is 28.999999999999996, a lot short
        self._cap_num, self._cap_den = Fraction(repr(self._depth_frac)).as_integer_ratio()
        self._levels = config.depth_levels
        self._resize = config.concentration_action == "resize"
        self._rate_frac = float(config.api_rate_frac)
        self._stop = config.trade_stop_ticks
        self._syms: dict[str, _Sym] = {}
        for s in symbols:
            self._register(s, None)
        self._state = GuardState.ACTIVE
        self._now_ns = 0
        self._n_paused = 0                 # stale symbols + widened spreads
        self._halt_rule: str | None = None
        self._halt_reason = ""
        self._killed = False
        self._dd_tripped = False
        self._hour_tripped = False
        self._equity: int | None = None
        self._day: int | None = None
        self._peak: int | None = None
        self._dd = 0.0
        self._hour_loss = 0.0
        self._marks: deque = deque()       # (ts_ns, equity_units), at most one per second, the last hour
        self._mark_sec: int | None = None
        self._rate: dict[str, tuple[int, int]] = {}
        self._rate_used = 0.0
        self._rate_over = False
        self._events: list[RiskEvent] = []
        self._actions: list[GuardAction] = []
        self._passed: dict[int, Verdict] = {}  # frozen verdicts are shareable; building one costs ~1 us

    # ---------------------------------------------------------------------------------------------- inputs

    @property
    def state(self) -> GuardState:
        """HALTED if latched, else REDUCING if any pause is on, else ACTIVE."""
        return self._state

    @property
    def halted_by(self) -> str | None:
        """The rule that latched the current halt, or None."""
        return self._halt_rule

    def on_book(self, ts_ns: int, symbol: str, best_bid_ticks: int | None, best_ask_ticks: int | None,
                bid_depth_lots, ask_depth_lots) -> None:
        """The local book of ``symbol`` after an update.

        ``best_*_ticks`` None: that side is empty. ``*_depth_lots``: the visible size of the best
        ``depth_levels`` levels of each side, as a total (int) or as the levels' sizes, best first.
        """
        s = self._syms.get(symbol)
        if s is None:
            s = self._register(symbol, ts_ns)
        self._now_ns = ts_ns
        if bid_depth_lots.__class__ is not int:
            bid_depth_lots = self._depth(bid_depth_lots)
        if ask_depth_lots.__class__ is not int:
            ask_depth_lots = self._depth(ask_depth_lots)
        s.bid = best_bid_ticks
        s.ask = best_ask_ticks
        s.bid_depth = bid_depth_lots
        s.ask_depth = ask_depth_lots
        if s.stale:
            self._fresh(s, ts_ns)
        s.last_book_ns = ts_ns
        if best_bid_ticks is None or best_ask_ticks is None:
            # nothing to trade against on one side: as good as an infinitely wide spread
            s.spread = None
            if not s.wide:
                self._widen(s, ts_ns)
        else:
            sp = best_ask_ticks - best_bid_ticks
            if sp > 0:  # a locked or crossed book says nothing about the spread: no sample, no judgement
                s.spread = sp
                if ts_ns >= s.next_sample_ns:
                    self._sample(s, ts_ns, sp)
                med = s.median
                if (med is not None and sp > self._x * med) != s.wide:
                    if s.wide:
                        self._narrow(s, ts_ns)
                    else:
                        self._widen(s, ts_ns)
        if s.stop_px is not None and not s.stopped:
            self._check_stop(s, ts_ns)

    def on_fill(self, ts_ns: int, symbol: str, side: int, px_ticks: int, qty_lots: int) -> None:
        """One fill of our order: the guard keeps each symbol's position and exact average entry from these."""
        s = self._syms.get(symbol)
        if s is None:
            s = self._register(symbol, ts_ns)
        self._now_ns = ts_ns
        pos = s.pos
        new = pos + qty_lots if side > 0 else pos - qty_lots
        if pos == 0 or (pos > 0) == (side > 0):  # opening or adding: the average moves
            a = pos if pos > 0 else -pos
            num = s.num * a + px_ticks * qty_lots * s.den
            den = s.den * (a + qty_lots)
            g = gcd(num, den)
            s.num, s.den = num // g, den // g
        elif new == 0 or (new > 0) != (pos > 0):  # closed, or flipped: a new position at this fill's price
            s.num, s.den = px_ticks, 1
            s.stopped = False
        # else reduced: the average of what is left is unchanged
        s.pos = new
        self._arm_stop(s)
        if s.stop_px is not None and not s.stopped:
            self._check_stop(s, ts_ns)

    def set_position(self, ts_ns: int, symbol: str, qty_lots: int, avg_entry_ticks: int | float = 0) -> None:
        """Restore a position (after a restart, from the journal); ``avg_entry_ticks`` is ignored when flat."""
        s = self._syms.get(symbol)
        if s is None:
            s = self._register(symbol, ts_ns)
        f = Fraction(avg_entry_ticks)
        s.pos, s.num, s.den, s.stopped = int(qty_lots), f.numerator, f.denominator, False
        self._arm_stop(s)

    def on_mark(self, ts_ns: int, equity_units: int) -> None:
        """Equity (cash + positions at mid) in quote notional units: the drawdown and hourly-loss rules."""
        self._now_ns = ts_ns
        day = ts_ns // DAY_NS
        if self._day is None or day > self._day:
            self._roll_day(day)
        eq = equity_units
        self._equity = eq
        if self._peak is None or eq > self._peak:
            self._peak = eq
        sec = ts_ns // SECOND_NS
        marks = self._marks
        if sec != self._mark_sec:  # one mark per second bounds the hour to 3600 entries
            self._mark_sec = sec
            marks.append((ts_ns, eq))
        cutoff = ts_ns - HOUR_NS
        while len(marks) > 1 and marks[0][0] <= cutoff:
            marks.popleft()
        peak = self._peak
        if peak > 0:
            dd = self._dd = (peak - eq) / peak
            if dd >= self.config.max_daily_drawdown_frac and not self._dd_tripped:
                self._dd_tripped = True
                lim = self.config.max_daily_drawdown_frac
                self._halt(ts_ns, DAILY_DRAWDOWN, _why_drawdown(dd, lim, peak, eq), dd, lim)
        ref_ns, ref = marks[0]
        if ref > 0:
            loss = self._hour_loss = (ref - eq) / ref
            if loss >= self.config.max_hourly_loss_frac and not self._hour_tripped:
                self._hour_tripped = True
                lim = self.config.max_hourly_loss_frac
                self._halt(ts_ns, HOURLY_LOSS, _why_hourly(loss, lim, eq, ref, ts_ns - ref_ns), loss, lim,
                           disable_key=True)

    def on_rate(self, ts_ns: int, usage: Mapping[str, tuple[int, int]]) -> None:
        """Rate-limit usage, ``name -> (count, limit)`` (e.g. from Binance ``rateLimits``: pass counts already
        rolled to the current window). A name missing from a call keeps its last reading; limit 0 is no limit."""
        self._now_ns = ts_ns
        rate = self._rate
        for name, (count, limit) in usage.items():
            rate[name] = (count, limit)
        worst, worst_name = 0.0, ""
        for name, (count, limit) in rate.items():
            if limit > 0 and count / limit > worst:
                worst, worst_name = count / limit, name
        self._rate_used = worst
        over = worst >= self._rate_frac
        if over != self._rate_over:
            self._rate_over = over
            if over:
                count, limit = rate[worst_name]
                reason = (f"API rate {worst_name} {count}/{limit} = {worst * 100:.1f} % >= {self._rate_frac * 100:.0f} "
                          f"%: only orders that reduce exposure pass")
            else:
                reason = f"API rate back under {self._rate_frac * 100:.0f} % (highest {worst * 100:.1f} %)"
            self._transition(ts_ns, API_RATE, reason, worst, self._rate_frac)

    def tick(self, ts_ns: int) -> None:
        """Time-driven checks: stale books and the UTC day roll. Call it on a timer (well under 300 ms)."""
        self._now_ns = ts_ns
        day = ts_ns // DAY_NS
        if self._day is None or day > self._day:
            self._roll_day(day)
        limit = self._stale_ns
        for s in self._syms.values():
            if s.stale:
                continue
            ref = s.last_book_ns
            if ref is None:
                if s.seen_ns is None:
                    s.seen_ns = ts_ns
                    continue
                ref = s.seen_ns
            if ts_ns - ref > limit:
                self._go_stale(s, ts_ns, ref)

    # ---------------------------------------------------------------------------------------------- orders

    def check_order(self, ts_ns: int, symbol: str, side: int, qty_lots: int, px_ticks: int | None = None, *,
                    source: str = "strategy") -> Verdict:
        """May this order go out, and at what size? Call it for every order, just before sending it.

        ``source="guard"`` marks the runner's orders for a FLATTEN action (they pass only when they reduce
        exposure); any other source is treated as the strategy's. ``px_ticks`` is not used by the rules yet
        (the concentration rule is about the position, whatever the price).
        """
        s = self._syms.get(symbol)
        if s is None:
            s = self._register(symbol, ts_ns)
        self._now_ns = ts_ns
        if side != 1 and side != -1:
            return Verdict(False, 0, INVALID, f"side must be +1 or -1, got {side!r}")
        if qty_lots.__class__ is not int:
            try:
                qty_lots = operator.index(qty_lots)
            except TypeError:
                return Verdict(False, 0, INVALID, f"qty_lots must be an integer, got {qty_lots!r}")
        if qty_lots <= 0:
            return Verdict(False, 0, INVALID, f"qty_lots must be > 0, got {qty_lots}")
        last = s.last_book_ns
        if last is not None and not s.stale and ts_ns - last > self._stale_ns:
            self._go_stale(s, ts_ns, last)  # no tick since the book went quiet: look now, before judging
        pos = s.pos
        if (side < 0 < pos and qty_lots <= pos) or (pos < 0 < side and qty_lots <= -pos):
            # reduces exposure: never resized, never blocked, but for a strategy's order while halted
            if self._halt_rule is None or source == "guard":
                return self._passed.get(qty_lots) or self._pass(qty_lots)
            return Verdict(False, 0, self._halt_rule, f"halted ({self._halt_reason}): only the guard's orders pass")
        if self._halt_rule is not None:
            return Verdict(False, 0, self._halt_rule, f"halted ({self._halt_reason}): no new exposure")
        if source == "guard":
            return Verdict(False, 0, INVALID, f"a guard order must reduce the position ({pos} lots)")
        if self._n_paused:
            rule, why = self._pause_cause()
            return Verdict(False, 0, rule, f"{why}: only orders that reduce exposure pass")
        if s.stopped:
            return Verdict(False, 0, TRADE_STOP, f"{symbol}: trade stop tripped, reduce-only until flat")
        if self._rate_over:
            return Verdict(False, 0, API_RATE, f"API rate {self._rate_used * 100:.1f} % >= "
                                               f"{self._rate_frac * 100:.0f} %: only orders that reduce exposure pass")
        if last is None:
            return Verdict(False, 0, STALE, f"{symbol}: no book yet")
        # Not reducing, so the position after the order has the order's sign: its exit is absorbed by the bids
        # for a buy (a long), by the asks for a sell.
        depth = s.bid_depth if side > 0 else s.ask_depth
        cap = depth * self._cap_num // self._cap_den
        room = cap - side * pos  # the most this order may add: |pos + side*q| <= cap
        if qty_lots <= room:
            return self._passed.get(qty_lots) or self._pass(qty_lots)
        return self._concentration(ts_ns, s, side, qty_lots, depth, cap, room)

    def kill(self, ts_ns: int, reason: str = "kill switch", source: str = "user") -> None:
        """Cancel all, flatten, block every strategy order until :meth:`resume`. A second kill does nothing."""
        self._now_ns = ts_ns
        if self._killed:
            return
        self._killed = True
        self._halt(ts_ns, KILL, f"{reason} (by {source})", 1.0, 1.0)

    def resume(self, ts_ns: int, source: str = "user") -> bool:
        """A human lifts a HALT; returns False when there was none. The drawdown and hourly-loss rules then
        measure from the equity now: the loss so far was seen and accepted. Pauses (stale, spread) are not
        latched and stay as their conditions say. The strategy and the guard cannot resume (ConfigError)."""
        if source in ("strategy", "guard"):
            raise ConfigError(f"only a human lifts a halt, not source={source!r}")
        self._now_ns = ts_ns
        if self._halt_rule is None:
            return False
        rule = self._halt_rule
        self._halt_rule, self._halt_reason = None, ""
        self._killed = self._dd_tripped = self._hour_tripped = False
        self._dd = self._hour_loss = 0.0
        if self._equity is not None:
            self._peak = self._equity
            self._marks.clear()
            self._marks.append((ts_ns, self._equity))
            self._mark_sec = ts_ns // SECOND_NS
        self._transition(ts_ns, RESUME, f"{rule} halt lifted by {source}", 0.0, 0.0)
        return True

    # ---------------------------------------------------------------------------------------------- outputs

    def position_lots(self, symbol: str) -> int:
        s = self._syms.get(symbol)
        return s.pos if s is not None else 0

    def avg_entry_ticks(self, symbol: str) -> float | None:
        """The average entry price of the open position (None when flat)."""
        s = self._syms.get(symbol)
        return s.avg_entry() if s is not None else None

    @property
    def has_output(self) -> bool:
        """Whether events or actions wait to be drained (a runner checks this on its hot path)."""
        return bool(self._events or self._actions)

    def drain_events(self) -> list[RiskEvent]:
        out, self._events = self._events, []
        return out

    def drain_actions(self) -> list[GuardAction]:
        out, self._actions = self._actions, []
        return out

    def breakers(self) -> dict[str, tuple[float, float, bool]]:
        """``rule -> (current value, threshold, tripped)`` for the dashboard's lights (units as in RiskEvent).

        Per-symbol rules show the worst symbol; ``stale`` ages are at the latest time the guard was given.
        """
        syms = self._syms.values()
        now = self._now_ns
        stop = max((s.adverse_ticks() for s in syms if s.pos), default=0.0)
        spread = max((s.spread / s.median for s in syms if s.spread is not None and s.median), default=0.0)
        if any(s.spread is None and s.last_book_ns is not None for s in syms):
            spread = inf  # a one-sided book
        ages = [now - (s.last_book_ns if s.last_book_ns is not None else s.seen_ns if s.seen_ns is not None else now)
                for s in syms]
        conc = 0.0
        for s in syms:
            if s.pos:
                depth = s.bid_depth if s.pos > 0 else s.ask_depth
                conc = max(conc, abs(s.pos) / depth if depth > 0 else inf)
        return {
            TRADE_STOP: (stop, float(self._stop) if self._stop is not None else inf, any(s.stopped for s in syms)),
            DAILY_DRAWDOWN: (self._dd, self.config.max_daily_drawdown_frac, self._dd_tripped),
            HOURLY_LOSS: (self._hour_loss, self.config.max_hourly_loss_frac, self._hour_tripped),
            SPREAD: (spread, self._x, any(s.wide for s in syms)),
            STALE: (float(max(ages, default=0)), float(self._stale_ns), any(s.stale for s in syms)),
            CONCENTRATION: (conc, self._depth_frac, conc > self._depth_frac),
            API_RATE: (self._rate_used, self._rate_frac, self._rate_over),
            KILL: (1.0 if self._killed else 0.0, 1.0, self._killed),
        }

    # ---------------------------------------------------------------------------------------------- internals

    def _register(self, symbol: str, ts_ns: int | None) -> _Sym:
        s = self._syms[symbol] = _Sym(symbol, ts_ns)
        return s

    def _pass(self, qty_lots: int) -> Verdict:
        v = Verdict(True, qty_lots)
        if len(self._passed) < 4096:
            self._passed[qty_lots] = v
        return v

    def _depth(self, levels) -> int:
        if levels is None:
            return 0
        if levels.__class__ is list or levels.__class__ is tuple:
            return sum(levels[:self._levels])
        try:
            return operator.index(levels)
        except TypeError:
            return int(sum(islice(levels, self._levels)))  # numpy arrays, iterables

    def _transition(self, ts_ns: int, rule: str, reason: str, value: float, threshold: float) -> None:
        old = self._state
        new = (GuardState.HALTED if self._halt_rule is not None
               else GuardState.REDUCING if self._n_paused else GuardState.ACTIVE)
        self._state = new
        self._events.append(RiskEvent(ts_ns, rule, old, new, reason, float(value), float(threshold)))

    def _halt(self, ts_ns: int, rule: str, reason: str, value: float, threshold: float, *,
              disable_key: bool = False) -> None:
        first = self._halt_rule is None
        if first:
            self._halt_rule, self._halt_reason = rule, reason
        self._transition(ts_ns, rule, reason, value, threshold)
        if first or rule == KILL:  # a kill on top of a halt repeats the cancel and flatten: the user wants them
            self._actions.append(GuardAction(ActionKind.CANCEL_ALL, None, reason))
            self._actions.append(GuardAction(ActionKind.FLATTEN, None, reason))
        if disable_key:
            self._actions.append(GuardAction(ActionKind.DISABLE_KEY, None, reason))

    def _roll_day(self, day: int) -> None:
        # the new day's peak starts from the equity at midnight: the last mark before it
        self._day = day
        self._peak = self._equity
        self._dd = 0.0

    def _go_stale(self, s: _Sym, ts_ns: int, ref_ns: int) -> None:
        s.stale = True
        self._n_paused += 1
        age = ts_ns - ref_ns
        reason = _why_stale(s.name, s.last_book_ns is not None, age, self._stale_ns)
        self._actions.append(GuardAction(ActionKind.CANCEL_ALL, s.name, reason))
        self._transition(ts_ns, STALE, reason, age, self._stale_ns)

    def _fresh(self, s: _Sym, ts_ns: int) -> None:
        s.stale = False
        self._n_paused -= 1
        ref = s.last_book_ns if s.last_book_ns is not None else s.seen_ns
        age = ts_ns - ref if ref is not None else 0
        self._transition(ts_ns, STALE, _why_fresh(s.name, age), age, self._stale_ns)

    def _sample(self, s: _Sym, ts_ns: int, sp: int) -> None:
        s.next_sample_ns = ts_ns + self._sample_ns
        samples, ordered = s.samples, s.ordered
        cutoff = ts_ns - self._window_ns
        while samples and samples[0][0] <= cutoff:
            del ordered[bisect_left(ordered, samples.popleft()[1])]
        samples.append((ts_ns, sp))
        insort(ordered, sp)
        n = len(ordered)
        if n >= self._min_samples:
            h = n >> 1
            s.median = ordered[h] if n & 1 else (ordered[h - 1] + ordered[h]) / 2
        else:
            s.median = None

    def _widen(self, s: _Sym, ts_ns: int) -> None:
        s.wide = True
        self._n_paused += 1
        if s.spread is None:
            self._transition(ts_ns, SPREAD, _why_one_sided(s.name, s.bid, s.ask), inf, self._x)
        else:
            ratio = s.spread / s.median
            self._transition(ts_ns, SPREAD, _why_widened(s.name, s.spread, self._x, s.median, ratio), ratio, self._x)

    def _narrow(self, s: _Sym, ts_ns: int) -> None:
        s.wide = False
        self._n_paused -= 1
        med = s.median
        ratio = s.spread / med if med else 0.0
        self._transition(ts_ns, SPREAD, _why_narrowed(s.name, s.spread, self._x, med), ratio, self._x)

    def _pause_cause(self) -> tuple[str, str]:
        for s in self._syms.values():
            if s.stale:
                return STALE, f"{s.name}: book stale"
            if s.wide:
                return SPREAD, f"{s.name}: spread widened"
        return "", "paused"  # unreachable while _n_paused > 0

    def _arm_stop(self, s: _Sym) -> None:
        stop = self._stop
        if stop is None or s.pos == 0:
            s.stop_px = None
        elif s.pos > 0:  # bid <= avg - stop  <=>  bid <= floor(avg - stop), bid an integer
            s.stop_px = (s.num - stop * s.den) // s.den
        else:  # ask >= avg + stop  <=>  ask >= ceil(avg + stop)
            s.stop_px = -((-s.num - stop * s.den) // s.den)

    def _check_stop(self, s: _Sym, ts_ns: int) -> None:
        if s.pos > 0:
            px = s.bid
            if px is None or px > s.stop_px:
                return
        else:
            px = s.ask
            if px is None or px < s.stop_px:
                return
        s.stopped = True
        adverse = s.adverse_ticks()
        reason = _why_stopped(s.name, s.pos, px, adverse, s.num / s.den, self._stop)
        self._actions.append(GuardAction(ActionKind.CANCEL_ALL, s.name, reason))
        self._actions.append(GuardAction(ActionKind.FLATTEN, s.name, reason))
        self._transition(ts_ns, TRADE_STOP, reason, adverse, self._stop)

    def _concentration(self, ts_ns: int, s: _Sym, side: int, qty_lots: int, depth: int, cap: int,
                       room: int) -> Verdict:
        after = s.pos + side * qty_lots
        value = abs(after) / depth if depth > 0 else inf
        head = _why_concentrated(s.name, abs(after), self._depth_frac, side, depth, cap)
        if self._resize and room > 0:
            reason = f"{head}: resized {qty_lots} -> {room}"
            self._transition(ts_ns, CONCENTRATION, reason, value, self._depth_frac)
            return Verdict(True, room, CONCENTRATION, reason)
        reason = f"{head}: rejected"
        self._transition(ts_ns, CONCENTRATION, reason, value, self._depth_frac)
        return Verdict(False, 0, CONCENTRATION, reason)
