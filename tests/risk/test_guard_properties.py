"""Properties of the risk guard over random sequences of strategy orders, market moves, fills, marks, rate usage and
a kill at a random point, judged against a model the test keeps itself (positions from its own fills, its own
view of the books, the day's peak, the rate readings, the trade stops):

1. no order passes that breaks a limit: concentration after a resize (and a resize is the largest that fits),
   reduce-only while REDUCING, on a stale or one-sided book, over the rate limit or after a trade stop, nothing but
   the guard's reducing orders while HALTED;
2. after the kill not one strategy order passes, and the guard's flatten orders never increase |position|;
3. the guard is not vacuously safe: an order that breaks nothing passes at exactly the size the rules allow, every
   flatten order the runner sends for a FLATTEN passes, and the trade stop fires exactly when the model says.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.risk import ActionKind, GuardState, RiskConfig, RiskGuard

MS = 1_000_000
S = 1_000_000_000
DAY = 86_400 * S
SYMS = ("A", "B")
START = 20_000 * DAY - 20 * S  # twenty seconds before a UTC midnight: some runs cross it

# 100, 200 and 400 are the depths where 0.29 x depth lands just under an integer in floats
depth = st.one_of(st.integers(0, 400), st.sampled_from([100, 200, 400]), st.lists(st.integers(0, 60), max_size=12))
ops = st.one_of(
    st.tuples(st.just("book"), st.sampled_from(SYMS), st.integers(0, 400), st.integers(990, 1010),
              st.integers(1, 9), depth, depth, st.sampled_from(["two"] * 6 + ["no_bid", "no_ask"])),
    st.tuples(st.just("order"), st.sampled_from(SYMS), st.sampled_from([1, -1]), st.integers(1, 40),
              st.integers(0, 4), st.integers(0, 50)),
    st.tuples(st.just("guard"), st.sampled_from(SYMS), st.sampled_from([1, -1]), st.integers(1, 40)),
    st.tuples(st.just("mark"), st.integers(0, 2_000), st.integers(-2_500, 2_000)),
    st.tuples(st.just("tick"), st.integers(0, 600)),
    st.tuples(st.just("jump"), st.integers(0, 7_200)),
    st.tuples(st.just("rate"), st.sampled_from(["ORDERS", "REQUEST_WEIGHT"]), st.integers(0, 60),
              st.integers(0, 50)),
    st.tuples(st.just("flatten"), st.integers(1, 4)),  # the runner works on FLATTEN actions, a quarter at a time
)
configs = st.builds(
    RiskConfig,
    max_depth_frac=st.sampled_from([0.05, 0.1, 0.25, 0.29]),
    concentration_action=st.sampled_from(["resize", "reject"]),
    trade_stop_ticks=st.one_of(st.none(), st.integers(1, 12)),
    spread_min_samples=st.sampled_from([3, 20]),
)


def level_sum(d, levels):
    return d if isinstance(d, int) else sum(d[:levels])


class Model:
    """What the test itself knows: every number here comes from the inputs it sent, not from the guard."""

    def __init__(self, cfg: RiskConfig) -> None:
        self.cfg = cfg
        self.frac = Fraction(repr(cfg.max_depth_frac))
        self.pos = dict.fromkeys(SYMS, 0)
        self.avg = dict.fromkeys(SYMS, Fraction(0))
        self.stopped = dict.fromkeys(SYMS, False)
        self.book: dict[str, tuple] = {}  # sym -> (ts, bid, ask, bid_depth, ask_depth)
        self.rate: dict[str, tuple[int, int]] = {}
        self.day = self.peak = self.equity = None
        self.dd_halted = False
        self.killed = False
        self.trips: set[str] = set()      # trade stops the model saw fire during the current step

    def roll(self, ts):
        day = ts // DAY
        if self.day is None or day > self.day:
            self.day, self.peak = day, self.equity

    def mark(self, ts, eq):
        self.roll(ts)
        self.equity = eq
        self.peak = eq if self.peak is None else max(self.peak, eq)
        if self.peak > 0 and 1000 * (self.peak - eq) >= 15 * self.peak:
            self.dd_halted = True

    def rate_over(self):
        return any(lim > 0 and 10 * c >= 9 * lim for c, lim in self.rate.values())

    def fresh(self, sym, ts):
        b = self.book.get(sym)
        return b is not None and ts - b[0] <= self.cfg.stale_after_ns

    def two_sided(self, sym):
        b = self.book.get(sym)
        return b is not None and b[1] is not None and b[2] is not None

    def cap(self, sym, side):
        b = self.book[sym]
        return int(self.frac * (b[3] if side > 0 else b[4]))

    def fill(self, sym, side, px, qty):
        pos, avg = self.pos[sym], self.avg[sym]
        new = pos + side * qty
        if pos == 0 or (pos > 0) == (side > 0):
            self.avg[sym] = (avg * abs(pos) + px * qty) / abs(new)
        elif new == 0 or (new > 0) != (pos > 0):
            self.avg[sym] = Fraction(px)
            self.stopped[sym] = False
        self.pos[sym] = new
        self.check_stop(sym)

    def check_stop(self, sym):
        stop, pos = self.cfg.trade_stop_ticks, self.pos[sym]
        b = self.book.get(sym)
        if stop is None or pos == 0 or self.stopped[sym] or b is None:
            return
        exit_px = b[1] if pos > 0 else b[2]
        if exit_px is None:
            return
        adverse = self.avg[sym] - exit_px if pos > 0 else exit_px - self.avg[sym]
        if adverse >= stop:
            self.stopped[sym] = True
            self.trips.add(sym)

    def exit_px(self, sym, side):
        b = self.book.get(sym)
        px = None if b is None else (b[2] if side > 0 else b[1])
        return px if px is not None else 1000


def reduces(pos, side, qty):
    return pos != 0 and side == (-1 if pos > 0 else 1) and qty <= abs(pos)


class Run:
    def __init__(self, cfg):
        self.g = RiskGuard(cfg, SYMS)
        self.m = Model(cfg)
        self.ts = START
        self.strategy_passed_after_kill = 0
        self.n_passed = 0
        self.n_flatten_orders = 0
        self.to_flatten: set[str] = set()  # symbols with a FLATTEN action the runner has not finished

    # ---- the runner's side: send an order through the guard, judge the verdict, fill what passed

    def strategy_order(self, sym, side, qty, fill_quarters):
        g, m, ts = self.g, self.m, self.ts
        state_before = g.state
        pos = m.pos[sym]
        v = g.check_order(ts, sym, side, qty, m.exit_px(sym, side))
        if m.killed:
            assert not v.allowed, "a strategy order passed after the kill"
        red = reduces(pos, side, qty)
        if v.allowed:
            self.n_passed += 1
            if m.killed:
                self.strategy_passed_after_kill += 1
            assert 0 < v.qty_lots <= qty
            assert g.state != GuardState.HALTED and not m.dd_halted
            if red:
                assert v.qty_lots == qty, "a reducing order was resized"
            else:
                assert g.state == GuardState.ACTIVE, f"new exposure passed while {g.state.name}"
                assert m.fresh(sym, ts) and m.two_sided(sym), "new exposure on a stale or one-sided book"
                assert not m.rate_over(), "new exposure over the rate limit"
                assert not m.stopped[sym], "new exposure after a trade stop"
                cap = m.cap(sym, side)
                assert abs(pos + side * v.qty_lots) <= cap, "concentration broken"
                if v.qty_lots < qty:
                    assert v.rule == "concentration" and m.cfg.concentration_action == "resize"
                    assert abs(pos + side * (v.qty_lots + 1)) > cap, "resized further down than needed"
        # liveness: when the model sees nothing wrong, the order passes at exactly the size the rules allow
        if (state_before == GuardState.ACTIVE and not m.killed and not m.dd_halted and m.fresh(sym, ts)
                and m.two_sided(sym) and not m.rate_over() and not m.stopped[sym]):
            if red:
                expected = qty
            else:
                room = m.cap(sym, side) - side * pos
                fits = qty <= room or (m.cfg.concentration_action == "resize" and room > 0)
                expected = min(qty, room) if fits else 0
            assert (v.allowed, v.qty_lots) == (expected > 0, expected), (v, expected)
        if v.allowed and fill_quarters:
            q = max(1, v.qty_lots * fill_quarters // 4)
            self.fill(sym, side, q)

    def guard_order(self, sym, side, qty):
        pos = self.m.pos[sym]
        v = self.g.check_order(self.ts, sym, side, qty, source="guard")
        if v.allowed:
            assert reduces(pos, side, v.qty_lots) and v.qty_lots == qty, "a guard order added exposure"
            assert abs(pos + side * v.qty_lots) < abs(pos)
            self.fill(sym, side, v.qty_lots)
        else:
            assert not reduces(pos, side, qty), f"a reducing guard order was refused: {v}"
        return v

    def fill(self, sym, side, qty):
        px = self.m.exit_px(sym, side)
        self.g.on_fill(self.ts, sym, side, px, qty)
        self.m.fill(sym, side, px, qty)
        assert self.g.position_lots(sym) == self.m.pos[sym]

    def handle_actions(self):
        actions = self.g.drain_actions()
        stops = {a.symbol for a in actions if a.kind == ActionKind.FLATTEN and a.symbol is not None}
        assert stops == self.m.trips, f"trade stops fired for {stops}, the model expected {self.m.trips}"
        self.m.trips.clear()
        for a in actions:
            if a.kind == ActionKind.FLATTEN:
                self.to_flatten.update(SYMS if a.symbol is None else (a.symbol,))

    def flatten(self, quarters):
        """Work on the FLATTEN actions: a reducing guard order for ``quarters``/4 of each position."""
        for sym in sorted(self.to_flatten):
            pos = self.m.pos[sym]
            if pos:
                self.n_flatten_orders += 1
                v = self.guard_order(sym, -1 if pos > 0 else 1, max(1, abs(pos) * quarters // 4))
                assert v.allowed, f"the flatten order for {sym} was refused: {v}"
            if self.m.pos[sym] == 0:
                self.to_flatten.discard(sym)
        assert self.m.trips == set()  # reducing fills never trip a stop

    # ---- one step of the random sequence

    def step(self, op):
        g, m = self.g, self.m
        kind = op[0]
        if kind == "book":
            _, sym, dt_ms, bid, spread, bd, ad, sides = op
            self.ts += dt_ms * MS
            b = None if sides == "no_bid" else bid
            a = None if sides == "no_ask" else bid + spread
            g.on_book(self.ts, sym, b, a, bd, ad)
            lv = m.cfg.depth_levels
            m.book[sym] = (self.ts, b, a, level_sum(bd, lv), level_sum(ad, lv))
            m.check_stop(sym)
        elif kind == "order":
            _, sym, side, qty, quarters, dt_ms = op
            self.ts += dt_ms * MS
            self.strategy_order(sym, side, qty, quarters)
        elif kind == "guard":
            _, sym, side, qty = op
            self.guard_order(sym, side, qty)
        elif kind == "mark":
            _, dt_ms, delta = op
            self.ts += dt_ms * MS
            eq = (m.equity if m.equity is not None else 100_000) + delta
            g.on_mark(self.ts, eq)
            m.mark(self.ts, eq)
        elif kind in ("tick", "jump"):
            self.ts += op[1] * (MS if kind == "tick" else S)
            g.tick(self.ts)
            m.roll(self.ts)
        elif kind == "flatten":
            self.flatten(op[1])
        elif kind == "rate":
            _, name, count, limit = op
            g.on_rate(self.ts, {name: (count, limit)})
            m.rate[name] = (count, limit)
        if m.dd_halted or m.killed:
            assert g.state == GuardState.HALTED
        self.handle_actions()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs, seq=st.lists(ops, max_size=80), kill_frac=st.floats(0, 1), again_frac=st.floats(0, 1))
def test_no_order_breaks_a_limit_and_nothing_passes_after_the_kill(cfg, seq, kill_frac, again_frac):
    run = Run(cfg)
    kill_at = int(kill_frac * len(seq))
    again_at = kill_at + int(again_frac * (len(seq) - kill_at))
    for i, op in enumerate(seq + [("tick", 0)]):
        if i == kill_at:
            run.g.drain_events()
            run.g.kill(run.ts, "property test", "test")
            run.m.killed = True
            evs = run.g.drain_events()
            assert [(e.rule, e.state_to) for e in evs] == [("kill", GuardState.HALTED)]
            run.handle_actions()
            assert run.to_flatten == set(SYMS)
        elif run.m.killed and i == again_at:
            run.g.drain_events()
            run.g.kill(run.ts, "again", "test")  # idempotent: nothing new
            assert run.g.drain_actions() == [] and not any(e.rule == "kill" for e in run.g.drain_events())
        run.step(op)
    assert run.m.killed and run.g.state == GuardState.HALTED
    assert run.strategy_passed_after_kill == 0
    run.flatten(4)  # the runner can always finish the flatten
    assert all(p == 0 for p in run.m.pos.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs, seq=st.lists(ops, min_size=5, max_size=80))
def test_without_a_kill_the_limits_hold_and_orders_flow(cfg, seq):
    """The same judgement without the kill, so that most of each run is spent trading, not halted."""
    run = Run(cfg)
    for op in seq:
        run.step(op)


def test_the_random_runs_reach_the_interesting_states():
    """A guard against a vacuous property: the generated runs do pass orders, resize, pause, halt and stop."""
    import random

    seen = set()
    rng = random.Random(7)
    for n in range(300):
        cfg = RiskConfig(trade_stop_ticks=rng.choice([None, 3]), spread_min_samples=3,
                         concentration_action=rng.choice(["resize", "reject"]))
        run = Run(cfg)
        for _ in range(120):
            r = rng.random()
            sym = rng.choice(SYMS)
            if r < 0.35:
                op = ("book", sym, rng.randint(0, 350), rng.randint(995, 1005), rng.choice([1, 1, 2, 9]),
                      rng.randint(0, 300), rng.randint(0, 300), rng.choice(["two"] * 10 + ["no_bid"]))
            elif r < 0.75:
                op = ("order", sym, rng.choice([1, -1]), rng.randint(1, 40), rng.randint(0, 4), rng.randint(0, 30))
            elif r < 0.85:
                op = ("mark", rng.randint(0, 2000), rng.randint(-700, 600))
            elif r < 0.92:
                op = ("tick", rng.randint(0, 400))
            elif r < 0.95:
                op = ("flatten", rng.randint(1, 4))
            else:
                op = ("rate", "ORDERS", rng.randint(30, 50), 50)
            run.step(op)
            for e in run.g.drain_events():
                seen.add((e.rule, e.state_to))
        seen.add(("passed", run.n_passed > 0))
        seen.add(("flattened", run.n_flatten_orders > 0))
    for want in [("passed", True), ("flattened", True), ("concentration", GuardState.ACTIVE),
                 ("spread", GuardState.REDUCING), ("stale", GuardState.REDUCING), ("trade_stop", GuardState.ACTIVE),
                 ("api_rate", GuardState.ACTIVE), ("daily_drawdown", GuardState.HALTED)]:
        assert want in seen, want


@settings(max_examples=300, deadline=None)
@given(frac=st.sampled_from(["0.01", "0.05", "0.1", "0.29", "0.3", "0.57", "0.58", "1"]),
       # multiples of 50 are where 0.29, 0.57, 0.58 x depth land just under an integer in floats (e.g. 0.29 x 100)
       depth=st.one_of(st.integers(0, 5_000), st.integers(1, 20).map(lambda k: 50 * k)),
       pos=st.integers(-600, 600), side=st.sampled_from([1, -1]), qty=st.integers(1, 2_000), action=st.sampled_from(["resize", "reject"]))
def test_concentration_cap_is_the_exact_floor(frac, depth, pos, side, qty, action):
    """The cap is floor(frac x depth) computed exactly, though frac x depth in floats may land either side."""
    g = RiskGuard(RiskConfig(max_depth_frac=float(frac), concentration_action=action), ("A",))
    g.on_book(0, "A", 1000, 1001, depth, depth)
    if pos:
        g.on_fill(0, "A", 1 if pos > 0 else -1, 1000, abs(pos))
    v = g.check_order(0, "A", side, qty)
    if reduces(pos, side, qty):
        assert (v.allowed, v.qty_lots) == (True, qty)
        return
    room = int(Fraction(frac) * depth) - side * pos
    expected = qty if qty <= room else (room if action == "resize" and room > 0 else 0)
    assert (v.allowed, v.qty_lots) == (expected > 0, expected)
