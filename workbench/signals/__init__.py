"""Trading signals: a batch function and a streaming class per signal, over the kernels in :mod:`.nb`.

Each signal comes twice, sharing one kernel code path:

- a batch function over whole arrays, e.g. ``bollinger_z(x, window)``;
- a streaming class holding the state, e.g. ``BollingerZ(window)``, whose ``update(chunk)`` returns the outputs of
  that chunk. Feeding any split of a stream through ``update`` gives exactly the batch result.

Conventions: prices and sizes are float64 (ticks, lots or dollars), timestamps int64 nanoseconds (``*_ns``), sides
int8 (+1 buy / bid, -1 sell / ask, 0 unknown; for trades the aggressor). Windows count events unless named ``*_ns``.
While fewer than ``window`` events have been seen, windowed signals use the events seen so far. Outputs are finite
for finite inputs; the docstrings say what a signal outputs when its dispersion is 0. Parameters are validated here
(:class:`~workbench.exceptions.ConfigError`); quantities are expected to be >= 0.

Exception: :func:`ohlc_bars` (aggregation of a time-stamped series into time bars, the input of
:func:`keltner_position_bars`) is batch only; see its docstring.

Call the kernels on batches: one call from Python costs about as much as a few hundred events inside numba.
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from workbench.exceptions import ConfigError
from workbench.signals import nb

__all__ = [
    "AbsorptionResult",
    "Bars",
    "BollingerZ",
    "BookImbalance",
    "BreakoutResult",
    "IcebergAbsorption",
    "KeltnerPosition",
    "KeltnerPositionBars",
    "MarkoutResult",
    "Markouts",
    "Microprice",
    "MomentumBreakout",
    "ResolvedMarkouts",
    "RollingVwap",
    "VolumeDelta",
    "VolumeDeltaResult",
    "VwapResult",
    "bollinger_z",
    "book_imbalance",
    "iceberg_absorption",
    "keltner_position",
    "keltner_position_bars",
    "markouts",
    "microprice",
    "momentum_breakout",
    "ohlc_bars",
    "rolling_vwap",
    "volume_delta",
]


class VwapResult(NamedTuple):
    """Rolling VWAP, ``px - vwap`` (price units) and ``1e4 * (px - vwap) / vwap`` (basis points)."""

    vwap: np.ndarray
    dev: np.ndarray
    dev_bp: np.ndarray


class VolumeDeltaResult(NamedTuple):
    """Aggressor buy minus sell volume: cumulative since the start, and over the last ``window`` trades."""

    cum: np.ndarray
    windowed: np.ndarray


class BreakoutResult(NamedTuple):
    """Breakout signal (int8, +1 up / -1 down / 0) and the relative volume it was filtered with."""

    signal: np.ndarray
    relvol: np.ndarray


class AbsorptionResult(NamedTuple):
    """Absorption ratio (traded at the level / displayed at start) and iceberg flag (int8, +1 bid, -1 ask, 0)."""

    ratio: np.ndarray
    flag: np.ndarray


class MarkoutResult(NamedTuple):
    """Markout per trade (price units, positive = the trade was right) and whether its horizon was in the data."""

    markout: np.ndarray
    valid: np.ndarray


class Bars(NamedTuple):
    """Time bars: start of the interval (int64 ns), open/high/low/close (float64), values in the bar (int64)."""

    start_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    count: np.ndarray


class ResolvedMarkouts(NamedTuple):
    """Markouts resolved by one streaming call, in trade order; ``trade_index`` counts trades from the start."""

    trade_index: np.ndarray
    markout: np.ndarray
    valid: np.ndarray


# ---------------------------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------------------------


def _int_param(value, name: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {v}")
    return v


def _float_param(value, name: str, minimum: float, *, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        op = ">" if strict else ">="
        raise ConfigError(f"{name} must be finite and {op} {minimum}, got {value!r}")
    return v


def _f64(a, name: str) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _i64(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{name} must hold integers (ns), got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _side(a, name: str = "side") -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and (arr.min() < -1 or arr.max() > 1):
        raise ConfigError(f"{name} must hold -1, 0 or +1")
    return np.ascontiguousarray(arr, dtype=np.int8)


def _same_len(**arrays: np.ndarray) -> None:
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ConfigError(f"inputs must have equal lengths, got {lengths}")


def _alpha_from_span(span: float) -> float:
    return 2.0 / (span + 1.0)


# ---------------------------------------------------------------------------------------------------------------
# 1. book imbalance
# ---------------------------------------------------------------------------------------------------------------


def _levels(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:  # one level per row
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be 2-D (rows, levels), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _check_levels(bid: np.ndarray, ask: np.ndarray, n_levels) -> int:
    if bid.shape != ask.shape:
        raise ConfigError(f"bid_qty and ask_qty must have the same shape, got {bid.shape} and {ask.shape}")
    if n_levels is None:
        return bid.shape[1]
    n = _int_param(n_levels, "n_levels", 1)
    if n > bid.shape[1]:
        raise ConfigError(f"n_levels={n} exceeds the {bid.shape[1]} levels given")
    return n


def book_imbalance(bid_qty, ask_qty, n_levels: int | None = None, halflife_events: float = 0.0) -> np.ndarray:
    """Order-book imbalance ``(sum_bid - sum_ask) / (sum_bid + sum_ask)`` over the top ``n_levels`` levels.

    Parameters
    ----------
    bid_qty, ask_qty : array (n_rows, N) or (n_rows,)
        Resting size per level, level 0 the best; 1-D means one level.
    n_levels : int, optional
        Levels summed (1..N); all of them by default.
    halflife_events : float
        EMA smoothing half-life in rows (seeded with the first value); 0 = raw.

    Returns
    -------
    ndarray of float64 in [-1, 1]; 0 where both sides are empty.
    """
    bid, ask = _levels(bid_qty, "bid_qty"), _levels(ask_qty, "ask_qty")
    n = _check_levels(bid, ask, n_levels)
    hl = _float_param(halflife_events, "halflife_events", 0.0)
    return nb.book_imbalance_nb(bid, ask, n, hl)


class BookImbalance:
    """Streaming :func:`book_imbalance`: ``update(bid_qty, ask_qty)`` per chunk of rows."""

    def __init__(self, n_levels: int | None = None, halflife_events: float = 0.0):
        self.n_levels = None if n_levels is None else _int_param(n_levels, "n_levels", 1)
        self.halflife_events = _float_param(halflife_events, "halflife_events", 0.0)
        self._fstate, self._istate = nb.book_imbalance_init_nb()

    def update(self, bid_qty, ask_qty) -> np.ndarray:
        bid, ask = _levels(bid_qty, "bid_qty"), _levels(ask_qty, "ask_qty")
        n = _check_levels(bid, ask, self.n_levels)
        out = np.empty(bid.shape[0])
        nb.book_imbalance_update_nb(bid, ask, n, self.halflife_events, self._fstate, self._istate, out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 2. microprice
# ---------------------------------------------------------------------------------------------------------------


def microprice(bid_px, bid_qty, ask_px, ask_qty) -> np.ndarray:
    """Microprice ``(bid_px * ask_qty + ask_px * bid_qty) / (bid_qty + ask_qty)``, the mid when both sizes are 0.

    Stateless: the streaming class :class:`Microprice` calls the same kernel.
    """
    bp, bq = _f64(bid_px, "bid_px"), _f64(bid_qty, "bid_qty")
    ap, aq = _f64(ask_px, "ask_px"), _f64(ask_qty, "ask_qty")
    _same_len(bid_px=bp, bid_qty=bq, ask_px=ap, ask_qty=aq)
    return nb.microprice_nb(bp, bq, ap, aq)


class Microprice:
    """Streaming :func:`microprice` (no state; kept for symmetry with the other signals)."""

    def update(self, bid_px, bid_qty, ask_px, ask_qty) -> np.ndarray:
        return microprice(bid_px, bid_qty, ask_px, ask_qty)


# ---------------------------------------------------------------------------------------------------------------
# 3. rolling VWAP
# ---------------------------------------------------------------------------------------------------------------


def rolling_vwap(px, qty, window: int) -> VwapResult:
    """VWAP over the last ``window`` trades and the deviation of the price from it.

    Warm-up: the trades seen so far. When the window holds no quantity the VWAP is the trade price itself
    (deviation 0); ``dev_bp`` is 0 when the VWAP is 0 (or below 1e-300, where the ratio would overflow).

    Returns
    -------
    VwapResult(vwap, dev, dev_bp), float64 arrays; ``dev = px - vwap``, ``dev_bp = 1e4 * dev / vwap``.
    """
    w = _int_param(window, "window", 1)
    p, q = _f64(px, "px"), _f64(qty, "qty")
    _same_len(px=p, qty=q)
    return VwapResult(*nb.rolling_vwap_nb(p, q, w))


class RollingVwap:
    """Streaming :func:`rolling_vwap`: ``update(px, qty) -> VwapResult`` per chunk."""

    def __init__(self, window: int):
        self.window = _int_param(window, "window", 1)
        self._state = nb.rolling_vwap_init_nb(self.window)

    def update(self, px, qty) -> VwapResult:
        p, q = _f64(px, "px"), _f64(qty, "qty")
        _same_len(px=p, qty=q)
        out = VwapResult(np.empty(len(p)), np.empty(len(p)), np.empty(len(p)))
        nb.rolling_vwap_update_nb(p, q, *self._state, *out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 4. Bollinger z-score
# ---------------------------------------------------------------------------------------------------------------


def bollinger_z(x, window: int) -> np.ndarray:
    """Bollinger z-score ``(x - mean) / std`` over the last ``window`` events (current included, ddof=0).

    Warm-up: the events seen so far (the first z is 0). z is 0 when the std is 0 (e.g. constant prices).
    Numerically careful for large prices with tiny spreads (values are shifted by the first one).
    """
    w = _int_param(window, "window", 1)
    return nb.bollinger_z_nb(_f64(x, "x"), w)


class BollingerZ:
    """Streaming :func:`bollinger_z`: ``update(x) -> z`` per chunk; chunk sizes do not change the result."""

    def __init__(self, window: int):
        self.window = _int_param(window, "window", 1)
        self._buf, self._fstate, self._istate = nb.bollinger_z_init_nb(self.window)

    def update(self, x, out: np.ndarray | None = None) -> np.ndarray:
        """z-scores of this chunk; ``out`` (float64, C-contiguous, ``len(x)``) receives them if given, which
        spares an allocation per chunk in hot paths."""
        arr = _f64(x, "x")
        if out is None:
            out = np.empty(len(arr))
        elif not (
            isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == arr.shape
            and out.flags.c_contiguous and out.flags.writeable
        ):
            raise ConfigError(f"out must be a writeable C-contiguous float64 array of shape {arr.shape}")
        nb.bollinger_z_update_nb(arr, self._buf, self._fstate, self._istate, out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 5. Keltner channel position
# ---------------------------------------------------------------------------------------------------------------


def _keltner_params(span, mult, atr_span) -> tuple[float, float, float]:
    s = _float_param(span, "span", 1.0)
    m = _float_param(mult, "mult", 0.0, strict=True)
    a = s if atr_span is None else _float_param(atr_span, "atr_span", 1.0)
    return _alpha_from_span(s), _alpha_from_span(a), m


def keltner_position(x, span: float, mult: float = 2.0, atr_span: float | None = None) -> np.ndarray:
    """Position in the Keltner channel ``(x - ema) / (mult * atr)``: +1 / -1 at the upper / lower band.

    ``ema``: EMA of x, ``alpha = 2 / (span + 1)``, seeded with the first value. ``atr``: EMA (span ``atr_span``,
    default ``span``) of the per-event true range ``|x_t - x_{t-1}|`` (0 for the first event). The position is 0
    while the ATR is 0 (first event, constant prices) or below ``1e-12 * |ema|`` (numerical residue).
    """
    alpha, alpha_atr, m = _keltner_params(span, mult, atr_span)
    return nb.keltner_position_nb(_f64(x, "x"), alpha, alpha_atr, m)


class KeltnerPosition:
    """Streaming :func:`keltner_position`: ``update(x) -> position`` per chunk."""

    def __init__(self, span: float, mult: float = 2.0, atr_span: float | None = None):
        self._alpha, self._alpha_atr, self.mult = _keltner_params(span, mult, atr_span)
        self._fstate, self._istate = nb.keltner_position_init_nb()

    def update(self, x) -> np.ndarray:
        arr = _f64(x, "x")
        out = np.empty(len(arr))
        nb.keltner_position_update_nb(arr, self._alpha, self._alpha_atr, self.mult, self._fstate, self._istate, out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 5b. OHLC bars and the Keltner channel position on bars
# ---------------------------------------------------------------------------------------------------------------


def ohlc_bars(ts_ns, x, bar_ns: int) -> Bars:
    """Aggregate a time-stamped series into OHLC bars of ``bar_ns`` nanoseconds.

    Bars are the intervals ``[k * bar_ns, (k + 1) * bar_ns)`` (aligned on multiples of ``bar_ns`` since the epoch,
    so 1 s bars start on whole seconds); a value stamped exactly on a boundary opens the next bar. Only intervals
    holding at least one value are returned: empty intervals are *skipped*, not filled, so ``start_ns`` can jump
    by more than ``bar_ns`` (``count`` is never 0). Empty input gives empty arrays.

    ``ts_ns`` must be integer nanoseconds sorted by time, ``x`` float64 of the same length (values are taken as
    given: NaN is not skipped). Batch only, no streaming class: a bar is final only once a later timestamp has
    arrived; to aggregate a stream, cut it on bar boundaries and call this per piece.

    Returns
    -------
    Bars(start_ns, open, high, low, close, count)
    """
    bn = _int_param(bar_ns, "bar_ns", 1)
    ts, v = _i64(ts_ns, "ts_ns"), _f64(x, "x")
    _same_len(ts_ns=ts, x=v)
    _sorted(ts, "ts_ns")
    return Bars(*nb.ohlc_bars_nb(ts, v, bn))


def _hlc(high, low, close) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = _f64(high, "high"), _f64(low, "low"), _f64(close, "close")
    _same_len(high=h, low=lo, close=c)
    bad = np.flatnonzero(h < lo)
    if len(bad):
        i = int(bad[0])
        raise ConfigError(
            f"high must be >= low in every bar: {len(bad)} bar(s) violate it, first at index {i} "
            f"(high={h[i]!r}, low={lo[i]!r})"
        )
    return h, lo, c


def keltner_position_bars(
    high, low, close, span: float, mult: float = 2.0, atr_span: float | None = None
) -> np.ndarray:
    """Position of each bar's close in the Keltner channel ``(close - ema) / (mult * atr)``: +1 / -1 at the bands.

    The classic Keltner channel, read on bars (e.g. from :func:`ohlc_bars`). ``ema``: EMA of the close,
    ``alpha = 2 / (span + 1)``, seeded with the first close. ``atr``: EMA (span ``atr_span``, default ``span``) of
    the true range ``max(high, prev_close) - min(low, prev_close)``, seeded with the first bar's ``high - low``.
    The position is 0 while the ATR is 0 (constant prices) or below ``1e-12 * |ema|`` (the rule of
    :func:`keltner_position`); the first bar gives 0 (its close is the EMA).

    Prefer this to :func:`keltner_position` on tick data: there consecutive prices are mostly equal, the per-event
    true range is tiny and the position lives far outside [-1, 1].

    ``high``, ``low``, ``close``: equal lengths, ``high >= low`` in every bar (:class:`ConfigError` otherwise).
    """
    alpha, alpha_atr, m = _keltner_params(span, mult, atr_span)
    return nb.keltner_bars_nb(*_hlc(high, low, close), alpha, alpha_atr, m)


class KeltnerPositionBars:
    """Streaming :func:`keltner_position_bars`: ``update(high, low, close) -> position`` per chunk of bars."""

    def __init__(self, span: float, mult: float = 2.0, atr_span: float | None = None):
        self._alpha, self._alpha_atr, self.mult = _keltner_params(span, mult, atr_span)
        self._fstate, self._istate = nb.keltner_bars_init_nb()

    def update(self, high, low, close) -> np.ndarray:
        h, lo, c = _hlc(high, low, close)
        out = np.empty(len(c))
        nb.keltner_bars_update_nb(h, lo, c, self._alpha, self._alpha_atr, self.mult, self._fstate, self._istate, out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 6. volume delta
# ---------------------------------------------------------------------------------------------------------------


def volume_delta(qty, side, window: int) -> VolumeDeltaResult:
    """Aggressor buy volume minus sell volume, cumulative and over the last ``window`` trades (side 0 counts 0).

    Warm-up of the windowed sum: the trades seen so far.
    """
    w = _int_param(window, "window", 1)
    q, s = _f64(qty, "qty"), _side(side)
    _same_len(qty=q, side=s)
    return VolumeDeltaResult(*nb.volume_delta_nb(q, s, w))


class VolumeDelta:
    """Streaming :func:`volume_delta`: ``update(qty, side) -> VolumeDeltaResult`` per chunk."""

    def __init__(self, window: int):
        self.window = _int_param(window, "window", 1)
        self._state = nb.volume_delta_init_nb(self.window)

    def update(self, qty, side) -> VolumeDeltaResult:
        q, s = _f64(qty, "qty"), _side(side)
        _same_len(qty=q, side=s)
        out = VolumeDeltaResult(np.empty(len(q)), np.empty(len(q)))
        nb.volume_delta_update_nb(q, s, *self._state, *out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 7. momentum breakout
# ---------------------------------------------------------------------------------------------------------------


def _breakout_params(window, min_relvol, baseline_span) -> tuple[int, float, float]:
    w = _int_param(window, "window", 1)
    mr = _float_param(min_relvol, "min_relvol", 0.0)
    bs = _float_param(baseline_span, "baseline_span", 1.0)
    return w, mr, _alpha_from_span(bs)


def momentum_breakout(
    px, qty, window: int, *, min_relvol: float = 1.0, baseline_span: float = 1000.0
) -> BreakoutResult:
    """Breakout of the previous ``window`` prices' range, confirmed by relative volume.

    signal is +1 when ``px`` is above the max of the previous ``window`` prices (current one excluded), -1 when it
    is below their min, provided ``relvol >= min_relvol``; 0 otherwise, and 0 for the first event.
    ``relvol`` = mean qty over the last ``window`` events (current included; warm-up: those seen so far) divided
    by the long-run mean qty per event, an EMA with span ``baseline_span`` seeded with the first qty and updated
    after the comparison. relvol is 0 while that baseline is 0.
    """
    w, mr, ab = _breakout_params(window, min_relvol, baseline_span)
    p, q = _f64(px, "px"), _f64(qty, "qty")
    _same_len(px=p, qty=q)
    return BreakoutResult(*nb.momentum_breakout_nb(p, q, w, mr, ab))


class MomentumBreakout:
    """Streaming :func:`momentum_breakout`: ``update(px, qty) -> BreakoutResult`` per chunk."""

    def __init__(self, window: int, *, min_relvol: float = 1.0, baseline_span: float = 1000.0):
        self.window, self.min_relvol, self._alpha_base = _breakout_params(window, min_relvol, baseline_span)
        self._state = nb.momentum_breakout_init_nb(self.window)

    def update(self, px, qty) -> BreakoutResult:
        p, q = _f64(px, "px"), _f64(qty, "qty")
        _same_len(px=p, qty=q)
        out = BreakoutResult(np.empty(len(p), dtype=np.int8), np.empty(len(p)))
        nb.momentum_breakout_update_nb(p, q, self.min_relvol, self._alpha_base, *self._state, *out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 8. iceberg / absorption
# ---------------------------------------------------------------------------------------------------------------


def _absorption_inputs(px, qty, side, bid_px, bid_qty, ask_px, ask_qty) -> tuple[np.ndarray, ...]:
    arrs = dict(
        px=_f64(px, "px"),
        qty=_f64(qty, "qty"),
        side=_side(side),
        bid_px=_f64(bid_px, "bid_px"),
        bid_qty=_f64(bid_qty, "bid_qty"),
        ask_px=_f64(ask_px, "ask_px"),
        ask_qty=_f64(ask_qty, "ask_qty"),
    )
    _same_len(**arrs)
    return tuple(arrs.values())


def iceberg_absorption(px, qty, side, bid_px, bid_qty, ask_px, ask_qty, min_ratio: float = 1.0) -> AbsorptionResult:
    """Absorption at the touch: traded quantity at a level over the size it displayed, and an iceberg flag.

    Per trade: price, quantity, aggressor side, and the best bid/ask price and size displayed just before it. A
    sell (-1) hits the bid, a buy (+1) lifts the ask. Per side the tracked level restarts (displayed size taken,
    traded reset) when the trade's resting level price differs from the tracked one; trades printed at the level
    add to the traded quantity. ``ratio`` = traded / displayed-at-start (0 if that was 0). ``flag`` = +1 (bid
    absorbing sells) or -1 (ask absorbing buys) when ``ratio > min_ratio`` and the trade printed at the level.
    Side-0 trades are ignored (ratio 0, flag 0).
    """
    mr = _float_param(min_ratio, "min_ratio", 0.0)
    arrs = _absorption_inputs(px, qty, side, bid_px, bid_qty, ask_px, ask_qty)
    return AbsorptionResult(*nb.iceberg_absorption_nb(*arrs, mr))


class IcebergAbsorption:
    """Streaming :func:`iceberg_absorption`: ``update(px, qty, side, bid_px, bid_qty, ask_px, ask_qty)``."""

    def __init__(self, min_ratio: float = 1.0):
        self.min_ratio = _float_param(min_ratio, "min_ratio", 0.0)
        self._fstate = nb.iceberg_absorption_init_nb()

    def update(self, px, qty, side, bid_px, bid_qty, ask_px, ask_qty) -> AbsorptionResult:
        arrs = _absorption_inputs(px, qty, side, bid_px, bid_qty, ask_px, ask_qty)
        n = len(arrs[0])
        out = AbsorptionResult(np.empty(n), np.empty(n, dtype=np.int8))
        nb.iceberg_absorption_update_nb(*arrs, self.min_ratio, self._fstate, *out)
        return out


# ---------------------------------------------------------------------------------------------------------------
# 9. markouts
# ---------------------------------------------------------------------------------------------------------------


def _horizon(horizon_events, horizon_ns) -> tuple[int, int]:
    if (horizon_events is None) == (horizon_ns is None):
        raise ConfigError("give exactly one of horizon_events and horizon_ns")
    if horizon_events is not None:
        return _int_param(horizon_events, "horizon_events", 0), 0
    return -1, _int_param(horizon_ns, "horizon_ns", 0)


def _sorted(ts: np.ndarray, name: str) -> None:
    if len(ts) > 1 and np.any(ts[1:] < ts[:-1]):
        raise ConfigError(f"{name} must be sorted by time")


def _trades(trade_ts_ns, trade_px, trade_side) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ts, px, side = _i64(trade_ts_ns, "trade_ts_ns"), _f64(trade_px, "trade_px"), _side(trade_side, "trade_side")
    _same_len(trade_ts_ns=ts, trade_px=px, trade_side=side)
    _sorted(ts, "trade_ts_ns")
    return ts, px, side


def _mids(mid_ts_ns, mid) -> tuple[np.ndarray, np.ndarray]:
    ts, m = _i64(mid_ts_ns, "mid_ts_ns"), _f64(mid, "mid")
    _same_len(mid_ts_ns=ts, mid=m)
    _sorted(ts, "mid_ts_ns")
    return ts, m


def markouts(
    trade_ts_ns,
    trade_px,
    trade_side,
    mid_ts_ns,
    mid,
    *,
    horizon_events: int | None = None,
    horizon_ns: int | None = None,
) -> MarkoutResult:
    """Signed markout of each trade against a mid series: ``side * (mid_then - trade_px)``.

    Give exactly one horizon. ``horizon_events=k``: ``mid_then`` is the mid k updates after the last mid at or
    before the trade (k=0: that mid itself). ``horizon_ns=h``: the last mid at or before ``trade_ts + h``.
    Trades and mids must each be sorted by time.

    Returns
    -------
    MarkoutResult(markout, valid): ``valid`` is False (markout 0.0) where the horizon runs past the end of the
    mids, or where no mid exists at or before the point asked for.
    """
    k, h = _horizon(horizon_events, horizon_ns)
    ts, px, side = _trades(trade_ts_ns, trade_px, trade_side)
    mts, m = _mids(mid_ts_ns, mid)
    return MarkoutResult(*nb.markouts_nb(ts, px, side, mts, m, k, h))


_EMPTY_I64 = np.empty(0, dtype=np.int64)
_EMPTY_F64 = np.empty(0)
_EMPTY_I8 = np.empty(0, dtype=np.int8)


class Markouts:
    """Streaming :func:`markouts`: trades wait in a pending buffer until the mids seen decide their markout.

    ``update(trade_ts_ns, trade_px, trade_side, mid_ts_ns, mid)`` appends a chunk of trades and a chunk of mids
    (either may be empty or omitted) and returns the markouts resolved so far as :class:`ResolvedMarkouts`, in
    trade order. ``finish()`` at the end of the data returns the rest (valid where the data still decides them).
    Concatenating every result gives the batch :func:`markouts`.

    Contract (checked, :class:`ConfigError`): trades and mids each go forward in time, within and across calls,
    and no trade is older than the last mid of an earlier call: cut a time-ordered event stream into chunks and
    pass each chunk's trades and mids together. The pending buffer grows as needed; nothing is dropped.
    """

    def __init__(self, *, horizon_events: int | None = None, horizon_ns: int | None = None, capacity: int = 1024):
        k, h = _horizon(horizon_events, horizon_ns)
        self.horizon_events, self.horizon_ns = horizon_events, horizon_ns
        cap = _int_param(capacity, "capacity", 1)
        (*self._pending, self._fstate, self._istate) = nb.markouts_init_nb(cap, k, h)
        self._finished = False
        self._last_trade_ts: int | None = None

    @property
    def n_pending(self) -> int:
        """Trades waiting for their horizon."""
        return int(self._istate[nb.MK_TAIL] - self._istate[nb.MK_HEAD])

    def _make_room(self, n_new: int) -> None:
        head, tail = int(self._istate[nb.MK_HEAD]), int(self._istate[nb.MK_TAIL])
        cap = len(self._pending[0])
        if tail + n_new <= cap:
            return
        n_pend = tail - head
        new_cap = cap if n_pend + n_new <= cap // 2 else max(2 * cap, n_pend + n_new)
        # compact the FIFO to the front (and grow it if it is more than half full)
        moved = []
        for arr in self._pending:
            new = np.zeros(new_cap, dtype=arr.dtype)
            new[:n_pend] = arr[head:tail]
            moved.append(new)
        self._pending = moved
        self._istate[nb.MK_UNDET] -= head
        self._istate[nb.MK_HEAD] = 0
        self._istate[nb.MK_TAIL] = n_pend

    def update(
        self,
        trade_ts_ns=_EMPTY_I64,
        trade_px=_EMPTY_F64,
        trade_side=_EMPTY_I8,
        mid_ts_ns=_EMPTY_I64,
        mid=_EMPTY_F64,
    ) -> ResolvedMarkouts:
        """Append a chunk of trades and a chunk of mids; return the markouts decided so far, in trade order."""
        if self._finished:
            raise ConfigError("this Markouts stream is finished; start a new one")
        ts, px, side = _trades(trade_ts_ns, trade_px, trade_side)
        mts, m = _mids(mid_ts_ns, mid)
        ist = self._istate
        if len(ts) and ist[nb.MK_N_MIDS] > 0 and ts[0] < ist[nb.MK_LAST_MID_TS]:
            raise ConfigError(
                f"trade at {ts[0]} ns is older than the last mid already given ({ist[nb.MK_LAST_MID_TS]} ns): "
                "pass trades and mids of one time slice together"
            )
        if len(ts) and self._last_trade_ts is not None and ts[0] < self._last_trade_ts:
            raise ConfigError("trade_ts_ns goes back in time across calls")
        if len(mts) and ist[nb.MK_N_MIDS] > 0 and mts[0] < ist[nb.MK_LAST_MID_TS]:
            raise ConfigError("mid_ts_ns goes back in time across calls")
        if len(ts):
            self._last_trade_ts = int(ts[-1])
        self._make_room(len(ts))
        n_max = self.n_pending + len(ts)
        out = ResolvedMarkouts(np.empty(n_max, dtype=np.int64), np.empty(n_max), np.empty(n_max, dtype=np.bool_))
        n = nb.markouts_update_nb(ts, px, side, mts, m, *self._pending, self._fstate, ist, *out)
        return ResolvedMarkouts(*(a[:n] for a in out))

    def finish(self) -> ResolvedMarkouts:
        """End of data: every pending trade, valid where the data seen decides it. The stream is closed after."""
        if self._finished:
            raise ConfigError("finish() was already called")
        n_max = self.n_pending
        out = ResolvedMarkouts(np.empty(n_max, dtype=np.int64), np.empty(n_max), np.empty(n_max, dtype=np.bool_))
        n = nb.markouts_finish_nb(*self._pending, self._fstate, self._istate, *out)
        self._finished = True
        return ResolvedMarkouts(*(a[:n] for a in out))
