"""Replay a Binance capture through the book and the signal kernels, and summarise what was seen.

This is the workbench's main job until the dashboard exists: it reads the capture in chunks, keeps the top of
book after every applied diff and every trade (compact arrays, not the events), then runs the signal kernels over
them in batch and renders a plain-text report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workbench import signals
from workbench.book.book import L2Book
from workbench.data.binance import BinanceCapture
from workbench.enums import K_DEPTH, K_TRADE
from workbench.instrument import Instrument

__all__ = ["ReplayReport", "replay_binance"]

_TOP_N = 5
_NS_PER_S = 1_000_000_000


@dataclass
class ReplayReport:
    """Figures of one replay; :meth:`render` prints them."""

    lines: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0
    n_events: int = 0

    def add(self, name: str, value: str) -> None:
        self.lines.append((name, value))

    def render(self) -> str:
        width = max((len(k) for k, _ in self.lines), default=0)
        out = [f"{k.ljust(width)}  {v}" for k, v in self.lines]
        if self.elapsed_s:
            out.append(f"{'replay'.ljust(width)}  {self.n_events:,} events in {self.elapsed_s:.2f} s "
                       f"({self.n_events / self.elapsed_s / 1e6:.2f} M events/s, parse included)")
        return "\n".join(out)


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


def replay_binance(paths: list[Path], *, instrument: Instrument | None = None) -> ReplayReport:
    reader = BinanceCapture(paths, instrument=instrument)
    ins = reader.instrument
    book = L2Book()
    ts_d, lv_d = [], []          # per applied diff: exchange time, top-N levels
    tr_ts, tr_px, tr_qty, tr_side, tr_book = [], [], [], [], []  # per trade, plus the book row before it
    n_rows = 0
    n_events = 0
    for ev in reader:
        n_events += len(ev)
        rec = book.replay(ev, _TOP_N)
        kinds = ev["kind"][rec.event_ix]
        is_diff = kinds == K_DEPTH
        ts_d.append(ev["ts_exch_ns"][rec.event_ix][is_diff])
        lv_d.append(rec.levels[is_diff])
        # for each trade: index of the last recorded diff at or before it (global row numbering)
        t = np.flatnonzero(ev["kind"] == K_TRADE)
        diff_pos = rec.event_ix[is_diff]
        before = np.searchsorted(diff_pos, t, side="right") - 1 + n_rows
        n_rows += len(diff_pos)
        tr_ts.append(ev["ts_exch_ns"][t])
        tr_px.append(ev["px_ticks"][t])
        tr_qty.append(ev["qty_lots"][t])
        tr_side.append(ev["side"][t])
        tr_book.append(before)
    st = reader.stats
    r = ReplayReport(n_events=n_events)
    r.add("recording", ", ".join(p.name for p in reader.paths))
    r.add("instrument", f"{ins.symbol} {reader.market} (tick {ins.tick_size}, lot {ins.lot_size})")
    checked = st["bbo_checked"]
    r.add(
        "book sync",
        f"diffs {st['diffs']:,}, applied {st['diffs_applied']:,}, gaps {st['gaps']}, resyncs {st['resyncs']}, "
        f"crossed {st['crossed']}, malformed {st['malformed']}, truncated {st['truncated']}",
    )
    if checked:
        r.add("bookTicker check", f"{st['bbo_matched']:,}/{checked:,} diffs match ({100 * st['bbo_matched'] / checked:.3f}%)")
    ts = np.concatenate(ts_d) if ts_d else np.zeros(0, np.int64)
    lv = np.concatenate(lv_d) if lv_d else np.zeros((0, 4, _TOP_N), np.int64)
    ok = (lv[:, 1, 0] > 0) & (lv[:, 3, 0] > 0)
    ts, lv = ts[ok], lv[ok]
    if len(ts) == 0:
        r.add("book", "no synchronised book in this recording")
        return r
    tick = ins.ticks_to_float(1)
    bid, ask = lv[:, 0, 0], lv[:, 2, 0]
    spread = ask - bid
    mid = (bid + ask) / 2.0
    r.add("span", f"{(ts[-1] - ts[0]) / _NS_PER_S:.1f} s of exchange time, {len(ts):,} book states")
    r.add("mid", f"first {mid[0] * tick:.2f}, last {mid[-1] * tick:.2f}, min {mid.min() * tick:.2f}, max {mid.max() * tick:.2f}")
    r.add("spread (ticks)", f"median {np.median(spread):.0f}, p99 {_pct(spread, 99):.0f}, max {spread.max()}")
    bq = ins.lots_to_float(lv[:, 1, :].astype(np.float64))
    aq = ins.lots_to_float(lv[:, 3, :].astype(np.float64))
    r.add(f"depth top {_TOP_N}", f"bid {bq.sum(axis=1).mean():.3f}, ask {aq.sum(axis=1).mean():.3f} (mean, {ins.symbol} units)")
    imb = signals.book_imbalance(bq, aq, _TOP_N)
    r.add("imbalance top 5", f"mean {imb.mean():+.3f}, std {imb.std():.3f}, |imb| > 0.8 on {100 * np.mean(np.abs(imb) > 0.8):.1f}%")
    micro = signals.microprice(bid.astype(float), bq[:, 0], ask.astype(float), aq[:, 0])
    r.add("microprice - mid", f"mean {np.mean(micro - mid):+.3f} ticks, std {np.std(micro - mid):.3f}")
    z = signals.bollinger_z(mid, 600)
    r.add("bollinger z (600 states)", f"|z| > 2 on {100 * np.mean(np.abs(z) > 2):.1f}%, |z| > 3 on {100 * np.mean(np.abs(z) > 3):.2f}%")
    # Keltner channels are read on bars (true range against the previous close), here 1 s bars of the mid
    bars = signals.ohlc_bars(ts, mid, _NS_PER_S)
    if len(bars.close) > 2:
        kp = signals.keltner_position_bars(bars.high, bars.low, bars.close, 20, 2.0)
        r.add("keltner (1 s bars, 20)", f"outside the 2-ATR channel on {100 * np.mean(np.abs(kp) > 1):.1f}% of {len(kp)} bars")

    tts, tpx, tqty = np.concatenate(tr_ts), np.concatenate(tr_px), np.concatenate(tr_qty)
    tside, tbook = np.concatenate(tr_side), np.concatenate(tr_book)
    if len(tts) == 0:
        r.add("trades", "none")
        return r
    qty_f = ins.lots_to_float(tqty.astype(np.float64))
    r.add("trades", f"{len(tts):,}, volume {qty_f.sum():.4f}, buyer-initiated {100 * np.mean(tside > 0):.1f}% of trades")
    vw = signals.rolling_vwap(tpx.astype(float), qty_f, 500)
    r.add("vwap (500 trades)", f"last {vw.vwap[-1] * tick:.2f}, |px - vwap| mean {np.mean(np.abs(vw.dev_bp)):.2f} bp")
    vd = signals.volume_delta(qty_f, tside, 200)
    r.add("volume delta", f"cumulative {vd.cum[-1]:+.4f}, 200-trade window min {vd.windowed.min():+.3f} max {vd.windowed.max():+.3f}")
    br = signals.momentum_breakout(tpx.astype(float), qty_f, 200, min_relvol=2.0)
    r.add("breakouts (200, relvol >= 2)", f"up {int(np.sum(br.signal > 0))}, down {int(np.sum(br.signal < 0))}")
    # iceberg / absorption: the displayed best levels just before each trade (trades before the first book skipped)
    has = tbook >= 0
    rows_all = np.concatenate(lv_d)[tbook[has]]
    ab = signals.iceberg_absorption(
        tpx[has].astype(float), qty_f[has], tside[has],
        rows_all[:, 0, 0].astype(float), ins.lots_to_float(rows_all[:, 1, 0].astype(float)),
        rows_all[:, 2, 0].astype(float), ins.lots_to_float(rows_all[:, 3, 0].astype(float)),
        min_ratio=1.0,
    )
    r.add("absorption (iceberg) trades", f"bid {int(np.sum(ab.flag > 0))}, ask {int(np.sum(ab.flag < 0))}")
    mk = signals.markouts(tts, tpx.astype(float), tside, ts, mid, horizon_ns=_NS_PER_S)
    v = mk.valid
    if v.any():
        bp = 1e4 * mk.markout[v] / tpx[v]
        r.add("markout 1 s", f"mean {bp.mean():+.3f} bp over {int(v.sum()):,} trades (positive: the aggressor was right)")
    return r
