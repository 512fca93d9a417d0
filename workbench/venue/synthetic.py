"""The embedded synthetic market: a stochastic order-flow model driving the matching engine.

:class:`SyntheticVenue` implements :class:`workbench.venue.api.Venue` by wrapping a
:class:`~workbench.venue.matching.MatchingEngine`: users' requests and every view go to the engine, and
:meth:`SyntheticVenue.advance` generates the market's own order flow up to the time given and submits it through
:meth:`~workbench.venue.matching.MatchingEngine.submit_batch`, in time order. A fresh venue has run a minute of flow
already (``warmup_s``), so its book has depth on both sides.

The model
---------
A zero-intelligence order flow in the spirit of Smith, Farmer, Gillemot and Krishnamurthy (2003) and Cont, Stoikov
and Talreja (2010), around a latent efficient price, with self-exciting arrivals (Hawkes 1971; Bacry, Mastromatteo
and Muzy 2015). Seven event types arrive as one multivariate Hawkes process with an exponential kernel: limit buys,
limit sells, market buys, market sells, random cancellations on each side, and jumps of the reference price. Their
mean rates are set by the config; ``hawkes_branching`` (the mean number of events an event triggers) makes them come
in bursts without changing those means (base rates are ``1 - n`` times the targets; 0 is a Poisson flow), and
``hawkes_self_share`` of what an event triggers is of its own type (order splitting, herding, volatility clustering),
the rest spread over all types in proportion to their rates.

- The *reference price* (in ticks) is a driftless random walk that moves by jumps of ``1 + geometric`` ticks, up or
  down with equal odds, at ``reference_jump_rate_per_s``; the jump size is set so that its variance per hour is
  ``volatility_bp_per_sqrt_hour`` squared: the volatility knob. At a jump, market makers withdraw their quotes the
  reference moved through, an arbitrageur takes the other orders left on the wrong side of it (one IOC limit order at
  the new touch, up to ``sweep_max_quote``, that trades only with such stale orders and never rests), and the
  makers quote the new touch: a bid at the reference and an ask one tick above, and three more quotes behind each.
  The spread is one tick right after a jump, whatever its size, and the stale liquidity it leaves behind is traded,
  as it is on a real exchange.
- Limit orders: ``quote_share`` of them are market makers' quotes around the reference (a bid at ``ref - d``, an ask
  at ``ref + 1 + d``, ``d`` geometric of mean ``quote_distance_ticks``), ``deep_share`` are patient orders resting
  deep around it (``d`` truncated Pareto up to ``deep_max_ticks``: the deep book); both are withdrawn when the
  reference moves through them. The others are priced relative to the best quote of their own side (``F_REL_PX``),
  as post-only orders: ``improve_share`` of them improve it by a geometric number of ticks (rejected when the spread
  has no room, so a spread that market orders opened closes back within a few events), ``join_share`` of the rest
  join the best, and the others rest behind it at a truncated Pareto distance (``behind_tail_exponent``, up to
  ``behind_max_ticks``). These relative orders do not know the reference: they are the liquidity a jump leaves
  stale, and most of the traded volume is arbitrageurs taking it (about two thirds at the defaults; market orders
  the rest), the adverse selection a market maker faces on a real exchange.
- Every limit order's owner cancels it after an exponential lifetime if it still rests (``deep_lifetime_s`` for deep
  orders, ``quote_lifetime_s`` for the others): the per-order cancellation of Cont-Stoikov-Talreja that makes the
  depth stationary (resting orders ~ arrival rate x lifetime). On top, random cancellations (``OP_CANCEL_NTH``: a
  random open order of a provider) come in bursts with the rest of the flow.
- Market orders of both signs come from their own account. Sizes of limit and market orders are log-normal (a
  heavy-ish right tail) with medians set in quote notional, never below the symbol's NOTIONAL filter.
- ``liquidity`` multiplies the limit-order and cancellation rates: the resting depth grows in proportion.

Liquidity providers (one account for bids, one for asks) and the takers (market orders, arbitrageurs) are separate
unlimited accounts (:data:`MARKET_ACCOUNTS`), so self-trade prevention never expires a taker; they get no execution
reports.

Determinism: the flow is a function of time only. Event times, types, prices (relative or absolute) and sizes come
from the point process and a private random stream per symbol (splitmix64, seeded from the config's ``seed`` and the
symbol), never from the book, so the same seed and the same sequence of calls give the same market, and cutting a
span of time into more :meth:`~SyntheticVenue.advance` calls changes nothing (advancing 10 s in steps of 1 ms or in
one step gives the same book and trades). Users' orders change the book, and so what the flow does to it, as they
would on an exchange.

Time: the venue's clock starts at ``start_ns`` (the warm-up is the flow of the minute before it). Time never goes
back: an earlier ``now_ns`` is taken as the venue's. A jump of more than ``max_gap_s`` (the first call with the wall
clock on a venue started at 0, a laptop waking up) is skipped: the market stands still over it and resumes from
where it was, instead of simulating hours of flow in one call.

Units are those of :mod:`workbench.venue.api`: ticks, lots, quote amounts in notional units of tick x lot.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import numpy as np

from workbench.exceptions import ConfigError
from workbench.instrument import Instrument
from workbench.venue import nb
from workbench.venue import synthetic_nb as snb
from workbench.venue.api import (
    CancelResult,
    DepthSnapshot,
    ExecutionReport,
    FeeSchedule,
    LevelChange,
    OrderRequest,
    OrderView,
    PlaceResult,
    SymbolSpec,
    TradePrint,
)
from workbench.venue.matching import MatchingEngine

__all__ = [
    "SyntheticConfig",
    "SyntheticVenue",
    "PRESETS",
    "MARKET_ACCOUNTS",
    "BID_PROVIDER",
    "ASK_PROVIDER",
    "TAKER",
    "USER",
    "USER_FEES",
]

#: Account ids of the market's own flow (unlimited, no execution reports): they never collide with users' ids.
BID_PROVIDER = -1
ASK_PROVIDER = -2
TAKER = -3
MARKET_ACCOUNTS = (BID_PROVIDER, ASK_PROVIDER, TAKER)
#: The API user of :meth:`SyntheticVenue.default`.
USER = 1
#: Binance Spot's regular tier: 0.1 % maker and taker.
USER_FEES = FeeSchedule(maker_ppm=1000, taker_ppm=1000)

_NS = 1_000_000_000
_ROUND_NS = 10 * _NS       # flow generated and submitted per round (bounds the buffers, not the results)
_CID_BASE = 1 << 60        # client-id handles of the flow: far above the handles the engine interns for users
_CID_SYM_SHIFT = 52


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """One symbol's synthetic market (see the module docstring for the model). Defaults: a BTCUSDT-like spot market.

    Instrument
        symbol, base_asset, quote_asset; ``tick_size``, ``lot_size`` (decimal strings; Binance's 0.01 and 0.00001);
        ``min_notional`` (quote asset; Binance's NOTIONAL filter, 5 USDT); ``initial_px`` (decimal string, 60000.00):
        the reference price at the start.
    Knobs
        volatility_bp_per_sqrt_hour (20) : standard deviation of the reference price's change over one hour, in
            basis points of the initial price; 0 holds the reference (and so the market) still. A quiet hour of
            BTCUSDT is 20-40 bp.
        liquidity (1.0) : multiplier of the limit-order and cancellation rates; resting depth is about proportional
            to it.
        hawkes_branching (0.8) : mean number of events an event triggers, in [0, 1): 0 is a Poisson flow, near 1
            very bursty; the mean rates do not depend on it.
        seed (0) : the random stream (with the symbol's name).
    Flow: mean rates, both sides together (the two sides have equal rates)
        limit_rate_per_s (160), market_rate_per_s (12), cancel_rate_per_s (6: random cancellations, on top of the
        lifetimes), reference_jump_rate_per_s (4); hawkes_decay_ms (200): e-folding time of the excitation;
        hawkes_self_share (0.8): share of triggered events of the parent's own type.
    Prices (ticks)
        quote_share (0.55) : share of limit orders that are quotes around the reference, at a geometric distance of
        mean ``quote_distance_ticks`` (5) from it; deep_share (0.3) : share that rest deep around it, at a Pareto
        distance (``deep_tail_exponent`` 1.2) truncated to [1, ``deep_max_ticks``] (5000). The others are relative
        to their side's best: improve_share (0.2) of them improve it by a geometric number of ticks of mean
        ``improve_ticks`` (1.5, >= 1); join_share (0.2) of the rest join it; the others rest behind it at a Pareto
        distance (``behind_tail_exponent`` 1.5) truncated to [1, ``behind_max_ticks``] (500).
    Sizes and lifetimes
        limit_size_median_quote (600), market_size_median_quote (300) : median order notional in the quote asset,
        log-normal with ``limit_size_sigma`` (1.0) and ``market_size_sigma`` (1.2); sweep_max_quote (60 000) : the
        most the arbitrageur takes at one jump (the flow's own stale liquidity stays below it: at the defaults the
        largest sweep of an hour is about 0.9 BTC; a user's large stale order fills over several events);
        quote_lifetime_s (5) : mean life of quotes and relative orders before their owner cancels them;
        deep_lifetime_s (300) : the same for deep orders.
    """

    symbol: str = "BTCUSDT"
    base_asset: str = "BTC"
    quote_asset: str = "USDT"
    tick_size: str = "0.01"
    lot_size: str = "0.00001"
    min_notional: str = "5"
    initial_px: str = "60000.00"
    # knobs
    volatility_bp_per_sqrt_hour: float = 20.0
    liquidity: float = 1.0
    hawkes_branching: float = 0.8
    seed: int = 0
    # flow
    limit_rate_per_s: float = 160.0
    market_rate_per_s: float = 12.0
    cancel_rate_per_s: float = 6.0
    reference_jump_rate_per_s: float = 4.0
    hawkes_decay_ms: float = 200.0
    hawkes_self_share: float = 0.8
    # prices
    quote_share: float = 0.55
    quote_distance_ticks: float = 5.0
    deep_share: float = 0.3
    deep_tail_exponent: float = 1.2
    deep_max_ticks: int = 5000
    improve_share: float = 0.2
    improve_ticks: float = 1.5
    join_share: float = 0.2
    behind_tail_exponent: float = 1.5
    behind_max_ticks: int = 500
    # sizes and lifetimes
    limit_size_median_quote: float = 600.0
    limit_size_sigma: float = 1.0
    market_size_median_quote: float = 300.0
    market_size_sigma: float = 1.2
    sweep_max_quote: float = 60_000.0
    quote_lifetime_s: float = 5.0
    deep_lifetime_s: float = 300.0

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"SyntheticConfig({self.symbol}): {what}")

        try:
            px = self.instrument.px_to_ticks(self.initial_px)  # also validates the increments
            mn = Decimal(self.min_notional)
        except (ValueError, ArithmeticError) as exc:
            raise ConfigError(f"SyntheticConfig({self.symbol}): {exc}") from None
        need(px > 1, "initial_px must be more than one tick")
        need(mn >= 0, "min_notional must be >= 0")
        need(self.volatility_bp_per_sqrt_hour >= 0, "volatility_bp_per_sqrt_hour must be >= 0")
        need(self.liquidity > 0, "liquidity must be > 0")
        need(0 <= self.hawkes_branching < 1, "hawkes_branching must lie in [0, 1)")
        need(0 <= self.hawkes_self_share <= 1, "hawkes_self_share must lie in [0, 1]")
        need(self.hawkes_decay_ms > 0, "hawkes_decay_ms must be > 0")
        for name in ("limit_rate_per_s", "reference_jump_rate_per_s"):
            need(getattr(self, name) > 0, f"{name} must be > 0")
        for name in ("market_rate_per_s", "cancel_rate_per_s"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0")
        for name in ("quote_share", "deep_share", "improve_share", "join_share"):
            need(0 <= getattr(self, name) <= 1, f"{name} must lie in [0, 1]")
        need(self.quote_share + self.deep_share <= 1, "quote_share + deep_share must be <= 1")
        need(self.quote_distance_ticks >= 0, "quote_distance_ticks must be >= 0")
        need(self.improve_ticks >= 1, "improve_ticks must be >= 1")
        for name in ("deep_tail_exponent", "behind_tail_exponent"):
            need(getattr(self, name) > 1, f"{name} must be > 1")
        for name in ("deep_max_ticks", "behind_max_ticks"):
            need(getattr(self, name) >= 2, f"{name} must be >= 2")
        for name in ("limit_size_median_quote", "market_size_median_quote", "sweep_max_quote", "quote_lifetime_s",
                     "deep_lifetime_s"):
            need(getattr(self, name) > 0, f"{name} must be > 0")
        for name in ("limit_size_sigma", "market_size_sigma"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0")

    @property
    def instrument(self) -> Instrument:
        return Instrument(self.symbol, self.tick_size, self.lot_size)

    @property
    def initial_px_ticks(self) -> int:
        return self.instrument.px_to_ticks(self.initial_px)

    @property
    def min_notional_ticks_lots(self) -> int:
        """The NOTIONAL filter in notional units (tick x lot), rounded up."""
        unit = Decimal(self.tick_size) * Decimal(self.lot_size)
        return int(-(-Decimal(self.min_notional) // unit))

    def spec(self) -> SymbolSpec:
        """The symbol's exchange filters: 1 lot up to 9000 base units (Binance's maxQty), the min notional."""
        max_lots = int(Decimal(9000) / Decimal(self.lot_size))
        return SymbolSpec(self.instrument, self.base_asset, self.quote_asset, 1, max_lots, self.min_notional_ticks_lots)

    def quote_to_lots(self, amount: float) -> float:
        """A quote-asset amount in lots at the initial price."""
        return float(Decimal(str(amount)) / (Decimal(self.initial_px) * Decimal(self.lot_size)))


#: Symbols :meth:`SyntheticVenue.default` knows: Binance Spot prices ticks (0.01), its 5 USDT min notional, round
#: prices of mid-2024, the flow's defaults otherwise. All share the lot 0.00001 (Binance's step for BTC; ETH, BNB and
#: SOL have coarser steps there) so that USDT has one unit, tick x lot = 1e-7 USDT, across symbols: the engine keeps
#: quote balances in notional units and the protocol refuses an asset with two units.
PRESETS: dict[str, SyntheticConfig] = {
    "BTCUSDT": SyntheticConfig(),
    "ETHUSDT": SyntheticConfig(symbol="ETHUSDT", base_asset="ETH", initial_px="3000.00"),
    "BNBUSDT": SyntheticConfig(symbol="BNBUSDT", base_asset="BNB", initial_px="550.00"),
    "SOLUSDT": SyntheticConfig(symbol="SOLUSDT", base_asset="SOL", initial_px="150.00"),
}
#: Starting balances of the default user, in asset units (about 600 k USDT of each base asset, and 1 M USDT).
_USER_FUNDS = {"BTC": "10", "ETH": "200", "BNB": "1000", "SOL": "4000", "USDT": "1000000"}


def _jumps(cfg: SyntheticConfig) -> tuple[float, float]:
    """(rate per s, q) of the reference's jumps of ``1 + geometric(q)`` ticks: their variance per second is the
    config's volatility (ticks^2/s at the initial price)."""
    sigma_ticks = cfg.volatility_bp_per_sqrt_hour * 1e-4 * cfg.initial_px_ticks / math.sqrt(3600.0)
    var = sigma_ticks**2
    rate = cfg.reference_jump_rate_per_s
    if var == 0.0:
        return 0.0, 0.0
    m2 = var / rate
    if m2 <= 1.0:  # jumps of one tick are enough: make them rarer
        return var, 0.0

    def second_moment(q: float) -> float:  # E[(1 + G)^2], G geometric: P(G = j) = (1 - q) q^j
        return 1 + 2 * q / (1 - q) + q * (1 + q) / (1 - q) ** 2

    lo, hi = 0.0, 1.0 - 1e-12
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if second_moment(mid) < m2 else (lo, mid)
    return rate, (lo + hi) / 2


def _grown(a: np.ndarray) -> np.ndarray:
    out = np.zeros((2 * len(a), *a.shape[1:]), a.dtype)
    out[: len(a)] = a
    return out


def _stream_seed(seed: int, symbol: str) -> int:
    digest = hashlib.blake2b(f"workbench.synthetic:{int(seed)}:{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class _Flow:
    """The generator state of one symbol (see :mod:`workbench.venue.synthetic_nb`)."""

    def __init__(self, cfg: SyntheticConfig, sym: int, accounts: tuple[int, int, int], t0_ns: int) -> None:
        self.cfg = cfg
        self.rng = np.array([_stream_seed(cfg.seed, cfg.symbol)], np.uint64)
        self.fs = np.zeros(snb.FS_SIZE, np.float64)
        self.ist = np.zeros(snb.IS_SIZE, np.int64)
        self.life = np.zeros((4096, 3), np.int64)  # heaps of (key, client-id handle, expiry)
        self.bids = np.zeros((1024, 3), np.int64)
        self.asks = np.zeros((1024, 3), np.int64)
        par = np.zeros(snb.P_SIZE, np.float64)
        liq = cfg.liquidity
        jump_rate, jump_q = _jumps(cfg)
        rates = np.zeros(snb.N_TYPES)
        rates[[snb.E_LIMIT_BUY, snb.E_LIMIT_SELL]] = cfg.limit_rate_per_s * liq / 2
        rates[[snb.E_MARKET_BUY, snb.E_MARKET_SELL]] = cfg.market_rate_per_s / 2
        rates[[snb.E_CANCEL_BID, snb.E_CANCEL_ASK]] = cfg.cancel_rate_per_s * liq / 2
        rates[snb.E_REFERENCE] = jump_rate
        n, w = cfg.hawkes_branching, cfg.hawkes_self_share
        beta = 1000.0 / cfg.hawkes_decay_ms
        par[snb.P_MU : snb.P_MU + snb.N_TYPES] = (1 - n) * rates
        par[snb.P_EXC : snb.P_EXC + snb.N_TYPES] = beta * n * (1 - w) * rates / rates.sum()
        par[snb.P_EXC_SELF] = beta * n * w
        par[snb.P_BETA] = beta
        par[snb.P_JUMP_Q] = jump_q
        par[snb.P_QUOTE] = cfg.quote_share
        m = cfg.quote_distance_ticks
        par[snb.P_QUOTE_Q] = m / (1 + m)
        par[snb.P_DEEP] = cfg.deep_share
        par[snb.P_DEEP_A] = cfg.deep_tail_exponent
        par[snb.P_DEEP_TRUNC] = 1.0 - float(cfg.deep_max_ticks) ** -(cfg.deep_tail_exponent - 1.0)
        par[snb.P_IMPROVE] = cfg.improve_share
        m = cfg.improve_ticks - 1
        par[snb.P_IMPROVE_Q] = m / (1 + m)
        par[snb.P_JOIN] = cfg.join_share
        par[snb.P_BEHIND_A] = cfg.behind_tail_exponent
        par[snb.P_BEHIND_TRUNC] = 1.0 - float(cfg.behind_max_ticks) ** -(cfg.behind_tail_exponent - 1.0)
        par[snb.P_LIMIT_MED] = cfg.quote_to_lots(cfg.limit_size_median_quote)
        par[snb.P_LIMIT_SIG] = cfg.limit_size_sigma
        par[snb.P_MARKET_MED] = cfg.quote_to_lots(cfg.market_size_median_quote)
        par[snb.P_MARKET_SIG] = cfg.market_size_sigma
        par[snb.P_DEEP_LIFE_S] = cfg.deep_lifetime_s
        par[snb.P_QUOTE_LIFE_S] = cfg.quote_lifetime_s
        par[snb.P_MIN_NOTIONAL] = cfg.min_notional_ticks_lots * 1.5  # room for the price to fall a third
        self.par = par
        spec = cfg.spec()
        sweep = min(spec.max_qty_lots, max(1, math.ceil(cfg.quote_to_lots(cfg.sweep_max_quote))))
        self.ipar = np.array([sym, *accounts, _CID_BASE + (sym << _CID_SYM_SHIFT), spec.min_qty_lots,
                              spec.max_qty_lots, sweep], np.int64)
        self.ist[snb.IS_REF] = cfg.initial_px_ticks
        snb.start_nb(self.rng, self.fs, self.ist, self.par, t0_ns)

    def generate(self, until_ns: int, shift_ns: int, cmds: np.ndarray, n0: int) -> tuple[int, int]:
        """Run the kernel; make room in a heap it found full (the caller handles ``GEN_CMDS_FULL``)."""
        n, status = snb.generate_nb(self.rng, self.fs, self.ist, self.par, self.ipar, self.life, self.bids,
                                    self.asks, until_ns, shift_ns, cmds, n0)
        if status == snb.GEN_LIFE_FULL:
            self.life = _grown(self.life)
        elif status == snb.GEN_BIDS_FULL:
            self.bids = self._compacted(self.bids, snb.IS_BIDS_N)
        elif status == snb.GEN_ASKS_FULL:
            self.asks = self._compacted(self.asks, snb.IS_ASKS_N)
        return int(n), int(status)

    def _compacted(self, heap: np.ndarray, count: int) -> np.ndarray:
        """Drop the quotes whose lifetime has ended (cancelled already), keep the others as a heap (sorted rows are
        one), and double the room if it is still more than half full."""
        n = int(self.ist[count])
        rows = heap[:n]
        rows = rows[rows[:, 2] > self.ist[snb.IS_T]]
        rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]  # the kernel's order: (key, client-id handle)
        out = np.zeros((2 * len(heap) if 2 * len(rows) > len(heap) else len(heap), 3), np.int64)
        out[: len(rows)] = rows
        self.ist[count] = len(rows)
        return out

    @property
    def reference_px_ticks(self) -> int:
        return int(self.ist[snb.IS_REF])


class SyntheticVenue:
    """A simulated exchange whose market is a synthetic order flow (see the module docstring).

    Parameters
    ----------
    configs : one :class:`SyntheticConfig` per symbol (or one config).
    balances : ``{account: {asset: amount}}`` of users, in lots (base assets) or notional units (quote assets).
    fees : users' commission rates: one schedule, or ``{account: schedule}`` (others get :data:`USER_FEES`).
    start_ns : the venue's time at construction; the warm-up is the flow of the ``warmup_s`` before it.
    warmup_s : seconds of flow run (unpublished) at construction, so the book starts with depth on both sides.
    max_gap_s : a request or :meth:`advance` that moves the clock further than this skips the gap (the market
        stands still over it; :meth:`simulate` never skips).
    engine_kw : passed to :class:`~workbench.venue.matching.MatchingEngine` (``initial_levels``, ``history``, ...).
    """

    def __init__(
        self,
        configs: SyntheticConfig | Sequence[SyntheticConfig],
        *,
        balances: dict[int, dict[str, int]] | None = None,
        fees: FeeSchedule | dict[int, FeeSchedule] = USER_FEES,
        start_ns: int = 0,
        warmup_s: float = 60.0,
        max_gap_s: float = 3600.0,
        **engine_kw,
    ) -> None:
        configs = (configs,) if isinstance(configs, SyntheticConfig) else tuple(configs)
        if not configs:
            raise ConfigError("a synthetic venue needs at least one SyntheticConfig")
        if warmup_s < 0 or max_gap_s <= 0:
            raise ConfigError("need warmup_s >= 0 and max_gap_s > 0")
        self.configs: dict[str, SyntheticConfig] = {}
        for c in configs:
            if c.symbol in self.configs:
                raise ConfigError(f"symbol {c.symbol!r} given twice")
            self.configs[c.symbol] = c
        if isinstance(fees, FeeSchedule):
            self._default_fees, fee_map = fees, {}
        else:
            self._default_fees, fee_map = USER_FEES, dict(fees)
        for acc in MARKET_ACCOUNTS:
            if acc in fee_map or acc in (balances or {}):
                raise ConfigError(f"account {acc} is the market's own")
        self._fees = fee_map
        self.engine = MatchingEngine(
            [c.spec() for c in configs],
            fees=self._default_fees,  # also for accounts the engine registers on first use
            ref_px_ticks={c.symbol: c.initial_px_ticks for c in configs},
            **engine_kw,
        )
        for acc in MARKET_ACCOUNTS:
            self.engine.add_account(acc, fees=FeeSchedule(0, 0), unlimited=True)
        for acc in sorted(set(fee_map) | set(balances or {})):
            self.engine.add_account(acc, fees=fee_map.get(acc), balances=(balances or {}).get(acc))
        self.symbols: dict[str, SymbolSpec] = self.engine.symbols
        accounts = tuple(self.engine.account_index(a) for a in MARKET_ACCOUNTS)
        warm_ns = int(round(warmup_s * _NS))
        self.start_ns = int(start_ns)
        self._t_ns = self.start_ns - warm_ns       # the venue's time: flow generated up to it
        self._shift_ns = 0                          # venue time - flow time (grows when a gap is skipped)
        self._max_gap_ns = int(round(max_gap_s * _NS))
        self._flows = [_Flow(c, self.engine.symbol_index(c.symbol), accounts, self._t_ns) for c in configs]
        self._cmds = np.zeros(4096, nb.cmd_dt)
        self._run(self.start_ns, publish=False, keep_trades=False, skip_gap=False)

    @classmethod
    def default(
        cls,
        symbols: Iterable[str] = ("BTCUSDT",),
        *,
        seed: int = 0,
        start_ns: int = 0,
        user: int = USER,
        warmup_s: float = 60.0,
        max_gap_s: float = 3600.0,
        **changes,
    ) -> "SyntheticVenue":
        """The embedded default market: :data:`PRESETS` symbols (BTCUSDT: tick 0.01, lot 0.00001, price 60 000,
        min notional 5 USDT), seeded with ``seed``, and one API user (account ``user``, fees :data:`USER_FEES`)
        holding 10 BTC (200 ETH, 1 000 BNB, 4 000 SOL for those symbols) and 1 000 000 USDT.

        ``changes`` replace config fields for every symbol (``volatility_bp_per_sqrt_hour=40``, ...); ``start_ns``,
        ``warmup_s`` and ``max_gap_s`` are the constructor's.
        """
        configs = []
        for name in (symbols,) if isinstance(symbols, str) else symbols:
            if name not in PRESETS:
                raise ConfigError(f"no preset for {name!r}; presets: {', '.join(PRESETS)}")
            configs.append(replace(PRESETS[name], seed=seed, **changes))
        funds: dict[str, int] = {}
        for c in configs:
            unit = {c.base_asset: Decimal(c.lot_size), c.quote_asset: Decimal(c.tick_size) * Decimal(c.lot_size)}
            for asset, step in unit.items():
                amount = int(Decimal(_USER_FUNDS.get(asset, "0")) / step)
                if asset in funds and funds[asset] != amount:
                    raise ConfigError(f"{asset} has different units in two symbols")
                funds[asset] = amount
        return cls(configs, balances={user: funds}, start_ns=start_ns, warmup_s=warmup_s, max_gap_s=max_gap_s)

    # -- the market ----------------------------------------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        """The venue's time: the flow has run up to it."""
        return self._t_ns

    def advance(self, now_ns: int) -> None:
        """Run the market's flow up to ``now_ns``; its events wait for :meth:`poll`."""
        self._run(int(now_ns), publish=True, keep_trades=False, skip_gap=True)

    def simulate(self, now_ns: int) -> np.ndarray:
        """Run the flow up to ``now_ns`` like :meth:`advance`, but publish nothing (``poll`` will not see these
        events, nor keep them in memory); return the public trades (rows of :data:`~workbench.venue.nb.out_dt`
        with ``kind == EV_TRADE``: ``ts_ns``, ``trade_id``, ``fill_px``, ``fill_qty``, ``side`` of the taker,
        taker ``order_id``). The fast path for research and statistics: hours of market in a second, and no gap is
        ever skipped."""
        return self._run(int(now_ns), publish=False, keep_trades=True, skip_gap=False)

    def reference_ticks(self, symbol: str) -> int:
        """The latent reference price (ticks) the market makers quote around: for research and tests, not
        something a trader of a real exchange could see. (``engine.reference_px`` is the last trade price.)"""
        for f in self._flows:
            if f.cfg.symbol == symbol:
                return f.reference_px_ticks
        raise ConfigError(f"unknown symbol {symbol!r}")

    def _run(self, now_ns: int, *, publish: bool, keep_trades: bool, skip_gap: bool) -> np.ndarray:
        trades: list[np.ndarray] = []
        if skip_gap and now_ns > self._t_ns + self._max_gap_ns:
            self._shift_ns += now_ns - self._t_ns  # skip: nothing happens over the gap
            self._t_ns = now_ns
        while self._t_ns < now_ns:
            end = min(now_ns, self._t_ns + _ROUND_NS)
            until = end - self._shift_ns
            n = 0
            for f in self._flows:
                while True:
                    n, status = f.generate(until, self._shift_ns, self._cmds, n)
                    if status == snb.GEN_DONE:
                        break
                    if status == snb.GEN_CMDS_FULL:
                        cmds = np.zeros(2 * len(self._cmds), nb.cmd_dt)
                        cmds[:n] = self._cmds[:n]
                        self._cmds = cmds
            if n:
                cmds = self._cmds[:n]
                if len(self._flows) > 1:  # symbols interleave by time (stable: each symbol keeps its order)
                    cmds = cmds[np.argsort(cmds["ts_ns"], kind="stable")]
                _, out = self.engine.submit_batch(cmds, publish=publish)
                if keep_trades:
                    trades.append(out[out["kind"] == nb.EV_TRADE])
            self._t_ns = end
        if not keep_trades:
            return np.zeros(0, nb.out_dt)
        return np.concatenate(trades) if trades else np.zeros(0, nb.out_dt)

    def _catch_up(self, now_ns: int) -> int:
        self.advance(now_ns)
        return max(int(now_ns), self._t_ns)

    # -- the Venue contract: requests (the market first runs up to their time) -----------------------------------------
    def place(self, req: OrderRequest, now_ns: int) -> PlaceResult:
        return self.engine.place(req, self._catch_up(now_ns))

    def cancel(
        self, account: int, symbol: str, now_ns: int, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> CancelResult:
        return self.engine.cancel(account, symbol, self._catch_up(now_ns), order_id=order_id,
                                  client_order_id=client_order_id)

    def cancel_all(self, account: int, symbol: str, now_ns: int) -> list[OrderView]:
        return self.engine.cancel_all(account, symbol, self._catch_up(now_ns))

    # -- views ---------------------------------------------------------------------------------------------------------
    def order(
        self, account: int, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> OrderView | None:
        return self.engine.order(account, symbol, order_id=order_id, client_order_id=client_order_id)

    def open_orders(self, account: int, symbol: str | None = None) -> list[OrderView]:
        return self.engine.open_orders(account, symbol)

    def balances(self, account: int) -> dict[str, tuple[int, int]]:
        return self.engine.balances(account)

    def fees_of(self, account: int) -> FeeSchedule:
        if account in MARKET_ACCOUNTS:
            return FeeSchedule(0, 0)
        return self._fees.get(int(account), self._default_fees)

    def deposit(self, account: int, asset: str, amount: int) -> None:
        """Add to (or, negative, take from) a user's free balance."""
        if account in MARKET_ACCOUNTS:
            raise ConfigError(f"account {account} is the market's own")
        self.engine.deposit(account, asset, amount)

    def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        return self.engine.depth(symbol, limit)

    def top(self, symbol: str) -> tuple[int | None, int, int | None, int]:
        """(best bid px, its lots, best ask px, its lots); None prices for an empty side."""
        return self.engine.top(symbol)

    def last_update_id(self, symbol: str) -> int:
        return self.engine.last_update_id(symbol)

    def poll(self) -> list[ExecutionReport | TradePrint | LevelChange]:
        return self.engine.poll()

    def record(self, seconds: float, *, step_ms: float = 100.0, snapshot_levels: int = 1000) -> dict[str, np.ndarray]:
        """Run the market for ``seconds`` from now and return what a recorder of its public streams would have
        written, per symbol: a snapshot (the book now), then every book change as depth rows (one message per
        update id, flagged BATCH_END) and every trade (``side`` = aggressor), in :data:`~workbench.types.event_dt`.
        The input of a backtest on the synthetic market; what happened stays in :meth:`poll` for nobody."""
        from workbench.enums import F_BATCH_END, F_CLEAR, K_DEPTH, K_SNAPSHOT, K_TRADE
        from workbench.types import empty_events

        if not seconds > 0 or not step_ms > 0:
            raise ConfigError("record needs seconds > 0 and step_ms > 0")
        self.poll()  # what happened before is not part of the recording
        t0 = self._t_ns
        rows: dict[str, list[tuple]] = {}
        for sym in self.configs:
            snap = self.depth(sym, snapshot_levels)
            lv = [(1, p, q) for p, q in snap.bids] + [(-1, p, q) for p, q in snap.asks]
            uid = snap.last_update_id
            rows[sym] = [(t0, K_SNAPSHOT, sd, p, q, uid, uid, -1, (F_CLEAR if k == 0 else 0)
                          | (F_BATCH_END if k == len(lv) - 1 else 0)) for k, (sd, p, q) in enumerate(lv)]
        end = t0 + int(seconds * _NS)
        step = max(int(step_ms * 1_000_000), 1)
        t = t0
        while t < end:
            t = min(t + step, end)
            self.advance(t)
            for e in self.poll():
                if isinstance(e, LevelChange):
                    out = rows[e.symbol]
                    last = out[-1]
                    if last[1] == K_DEPTH and last[5] == e.update_id:  # the same message: move its end flag
                        out[-1] = last[:8] + (last[8] & ~F_BATCH_END,)
                    out.append((e.ts_ns, K_DEPTH, e.side, e.px_ticks, e.qty_lots, e.update_id, e.update_id,
                                e.update_id - 1, F_BATCH_END))
                elif isinstance(e, TradePrint):
                    rows[e.symbol].append((e.ts_ns, K_TRADE, -1 if e.buyer_is_maker else 1, e.px_ticks, e.qty_lots,
                                           e.trade_id, e.trade_id, -1, F_BATCH_END))
        out = {}
        for sym, rs in rows.items():
            ev = empty_events(len(rs))
            if rs:
                cols = list(zip(*rs))
                ev["ts_exch_ns"] = ev["ts_local_ns"] = cols[0]
                for name, c in zip(("kind", "side", "px_ticks", "qty_lots", "id", "first_id", "prev_id", "flags"),
                                   cols[1:]):
                    ev[name] = c
            out[sym] = ev
        return out

    def __repr__(self) -> str:
        tops = ", ".join(f"{s}: {self.top(s)}" for s in self.configs)
        return f"SyntheticVenue({tops}; t={self._t_ns})"
