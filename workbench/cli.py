"""The ``workbench`` command line.

``workbench replay [PATH ...]``   replay a recording; print book and signal statistics (the main job for now)
``workbench book PATH ... --format lobster|binance -o OUT.csv``   rebuild the book of a recording, row by row
``workbench convert PATH ... --format binance|lobster|equity -o OUT.parquet``   the workbench's recording format
``workbench venue [--synthetic | --replay PATH ...]``   serve the simulated exchange (Binance Spot protocol)

Errors in the input files end the command with a one-line message on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np

from workbench.book.book import L2Book
from workbench.enums import K_DEPTH
from workbench.exceptions import ConfigError, DataError
from workbench.instrument import Instrument

__all__ = ["main", "default_recording"]

EXIT_INPUT = 2


def default_recording() -> list[Path] | None:
    """The Binance spot capture in ``../shared/data`` beside the repository (or ``$WORKBENCH_DATA``), if present."""
    from workbench.data.paths import shared_data_root

    files = sorted((shared_data_root() / "binance" / "spot").glob("btcusdt_*.gz"))
    return files or None


def _instrument(args, fallback_symbol: str = "X") -> Instrument | None:
    if args.tick_size is None and args.lot_size is None:
        return None
    if args.tick_size is None or args.lot_size is None:
        raise ConfigError("pass both --tick-size and --lot-size")
    symbol = args.symbol[0] if isinstance(args.symbol, list) else args.symbol
    return Instrument(symbol or fallback_symbol, args.tick_size, args.lot_size)


def _out(path: str):
    return sys.stdout if path == "-" else open(path, "w", newline="")


# -- book ----------------------------------------------------------------------------------------------------------
def _book_lobster(args) -> int:
    from workbench.data.lobster import iter_lobster_messages
    from workbench.data.lobster_book import iter_level1_rows
    from workbench.stats import ReadStats

    if len(args.paths) != 1:
        raise ConfigError("--format lobster takes one message file")
    stats = ReadStats()
    book = L2Book()
    chunks = iter_lobster_messages(args.paths[0], instrument=_instrument(args, "LOBSTER"), stats=stats)
    rows = 0
    with _out(args.output) as f:
        for out in iter_level1_rows(chunks, book):
            np.savetxt(f, out, fmt="%d", delimiter=",")
            rows += len(out)
    stale_b, stale_a = book.stale
    print(
        f"messages={rows} malformed={stats['malformed']} clamped={book.n_clamped} crossed={book.n_crossed} "
        f"stale_at_end=bid:{int(stale_b)},ask:{int(stale_a)}",
        file=sys.stderr,
    )
    for p in stats.problems:
        print(f"  {p}", file=sys.stderr)
    return 0


def _book_binance(args) -> int:
    from workbench.data.binance import BinanceCapture

    reader = BinanceCapture(args.paths, instrument=_instrument(args))
    ins = reader.instrument
    book = L2Book()
    px_s, qty_s = ins.ticks_to_str, ins.lots_to_str
    with _out(args.output) as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["update_id", "bid_px", "bid_qty", "ask_px", "ask_qty"])
        for ev in reader:
            rec = book.replay(ev, 1)
            keep = ev["kind"][rec.event_ix] == K_DEPTH  # batch ends of applied diffs (not snapshots, trades)
            ids = ev["id"][rec.event_ix][keep]
            lv = rec.levels[keep, :, 0]
            for uid, (bp, bq, ap, aq) in zip(ids.tolist(), lv.tolist()):
                w.writerow(
                    [uid, px_s(bp) if bq else "", qty_s(bq) if bq else "", px_s(ap) if aq else "", qty_s(aq) if aq else ""]
                )
    st = reader.stats
    dropped = st["diffs"] - st["diffs_applied"]
    checked = st["bbo_checked"]
    print(
        f"{ins.symbol} ({reader.market}, tick {ins.tick_size}, lot {ins.lot_size}): diffs={st['diffs']} "
        f"applied={st['diffs_applied']} dropped={dropped} gaps={st['gaps']} resyncs={st['resyncs']} "
        f"crossed={st['crossed']} malformed={st['malformed']} truncated={st['truncated']} "
        f"in_sync_at_end={int(reader.sync.in_sync)} bbo_match={st['bbo_matched']}/{checked}"
        + (f" ({100 * st['bbo_matched'] / checked:.3f}%)" if checked else ""),
        file=sys.stderr,
    )
    for p in st.problems:
        print(f"  {p}", file=sys.stderr)
    return 0


def cmd_book(args) -> int:
    return _book_lobster(args) if args.format == "lobster" else _book_binance(args)


# -- convert -------------------------------------------------------------------------------------------------------
def cmd_convert(args) -> int:
    from workbench.data.parquet import write_events
    from workbench.stats import ReadStats

    stats = ReadStats()
    ins = _instrument(args)
    if args.format == "binance":
        from workbench.data.binance import BinanceCapture

        reader = BinanceCapture(args.paths, instrument=ins, stats=stats)
        chunks, ins = reader, reader.instrument
    elif args.format == "lobster":
        from workbench.data.lobster import iter_lobster_messages, lobster_instrument

        if len(args.paths) != 1:
            raise ConfigError("--format lobster takes one message file")
        ins = ins or lobster_instrument(args.paths[0])
        chunks = iter_lobster_messages(args.paths[0], instrument=ins, stats=stats)
    else:
        from workbench.data.equity import equity_instrument, iter_equity_ticks

        if len(args.paths) != 2:
            raise ConfigError("--format equity takes a quote zip and a trade zip")
        ins = ins or equity_instrument(args.paths[0])
        chunks = iter_equity_ticks(args.paths[0], args.paths[1], instrument=ins, stats=stats, classify="quote")
    n = write_events(args.output, chunks, instrument=ins, source=" ".join(Path(p).name for p in args.paths))
    print(f"{args.output}: {n} events ({ins.symbol}, tick {ins.tick_size}, lot {ins.lot_size}); {stats.summary()}",
          file=sys.stderr)
    for p in stats.problems:
        print(f"  {p}", file=sys.stderr)
    return 0


# -- replay (main job) ---------------------------------------------------------------------------------------------
def cmd_replay(args) -> int:
    from workbench.data.replay_stats import replay_binance

    paths = [Path(p) for p in args.paths] or default_recording()
    if not paths:
        print(
            "workbench replay: no recording given and none found in ../shared/data/binance/spot "
            "(set WORKBENCH_DATA or pass capture files)",
            file=sys.stderr,
        )
        return EXIT_INPUT
    t0 = time.perf_counter()
    report = replay_binance(paths, instrument=_instrument(args))
    report.elapsed_s = time.perf_counter() - t0
    print(report.render())
    return 0


# -- venue -----------------------------------------------------------------------------------------------------------
USER_ACCOUNT = 1


def _assets(symbol: str) -> tuple[str, str]:
    from workbench.data.recording import split_symbol

    return split_symbol(symbol)


def _default_keys_path() -> Path:
    import os

    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "workbench" / "venue-keys.json"


def _replay_venue(paths: list[str], args):
    """A ReplayVenue over a Binance capture, a LOBSTER message file or the workbench's Parquet."""
    from workbench.venue.api import SymbolSpec
    from workbench.venue.replay import ReplayVenue

    ins, chunks = _recording(paths, args)
    base, quote = _assets(ins.symbol)
    spec = SymbolSpec(ins, base, quote)
    # the user's starting balances: 10 base units and 1,000,000 quote units
    lots = ins.qty_to_lots("10")
    notional = ins.px_to_ticks("1000000") * ins.qty_to_lots("1")
    return ReplayVenue(chunks, spec, accounts={USER_ACCOUNT: {base: lots, quote: notional}}, seed=args.seed)


def _recording(paths: list[str], args):
    """(instrument, event chunks) of a Binance capture, a LOBSTER message file or the workbench's Parquet."""
    from workbench.data.recording import open_recording

    return open_recording(paths, _instrument(args))


def _latency(args):
    """The LatencyModel of ``--latency-ms`` / ``--latency-from-recording``, or None."""
    from workbench.venue.latency import LatencyModel, SampledLatency, feed_latency_samples

    if args.latency_ms is None and not args.latency_from_recording:
        return None
    legs_ms = [0.0, 0.0]
    if args.latency_ms is not None:
        try:
            legs_ms = [float(x) for x in args.latency_ms.split(",")]
        except ValueError:
            legs_ms = []
        if not 1 <= len(legs_ms) <= 3 or min(legs_ms) < 0:
            raise ConfigError(f"--latency-ms {args.latency_ms!r}: expected FEED[,ORDER[,RESPONSE]] in ms, each >= 0")
    feed_ns, *order_ns = (round(ms * 1_000_000) for ms in legs_ms)
    model = LatencyModel.constant(feed_ns, *(order_ns or [0]))
    if args.latency_from_recording:
        if not args.replay:
            raise ConfigError("--latency-from-recording needs --replay: the feed latency is sampled from it")
        samples = feed_latency_samples(_recording(args.replay, args)[1])
        if len(samples) == 0:
            raise ConfigError("--latency-from-recording: the recording has no exchange-stamped depth or trade messages")
        # what a recording cannot see (its fastest message counts as 0) is the constant FEED part, added here
        model = LatencyModel(SampledLatency(samples + feed_ns, seed=args.seed), model.order_entry, model.response)
    return model


def _parse_fault(text: str):
    """``KIND@SECONDS[:ARG...]`` -> (seconds, kind, args)."""
    kind, at, rest = text.partition("@")
    if not at:
        raise ConfigError(f"--fault {text!r}: expected KIND@SECONDS[:ARG...], e.g. drop-depth@5 or error@3:order.place:-2010")
    when, *fargs = rest.split(":")
    kinds = ("drop-depth", "stale-snapshot", "disconnect", "shutdown", "error", "unknown-status")
    if kind not in kinds:
        raise ConfigError(f"--fault {text!r}: unknown fault {kind!r} (one of {', '.join(kinds)})")
    try:
        seconds = float(when)
    except ValueError:
        raise ConfigError(f"--fault {text!r}: {when!r} is not a number of seconds") from None
    if kind == "error" and len(fargs) < 2:
        raise ConfigError(f"--fault {text!r}: error needs METHOD:CODE, e.g. error@3:order.place:-2010")
    return seconds, kind, fargs


def _apply_fault(server, kind: str, fargs: list[str]) -> str:
    if kind == "drop-depth":
        server.faults.drop_depth += int(fargs[0]) if fargs else 1
    elif kind == "stale-snapshot":
        server.faults.stale_snapshot += int(fargs[0]) if fargs else 1
    elif kind == "disconnect":
        server.disconnect_all()
    elif kind == "shutdown":
        server.send_server_shutdown()
    elif kind == "error":
        times = int(fargs[2]) if len(fargs) > 2 else 1
        server.protocol.faults.fail(fargs[0], int(fargs[1]), times=times)
    elif kind == "unknown-status":
        server.protocol.faults.unknown_status(fargs[0] if fargs else "order.place")
    return f"fault: {kind} {' '.join(fargs)}".rstrip()


def cmd_venue(args) -> int:
    import asyncio
    import logging
    import signal

    from workbench.venue.keys import new_api_key, write_keys_file
    from workbench.venue.server import ServerConfig, VenueClock, VenueServer

    faults = [_parse_fault(f) for f in args.fault]
    if args.replay:
        venue = _replay_venue(args.replay, args)
        start = venue.next_event_ns
        clock = VenueClock(start_ns=start, speed=args.speed)
    else:
        from workbench.venue.synthetic import SyntheticVenue

        venue = SyntheticVenue.default(symbols=tuple(s.upper() for s in (args.symbol or ["BTCUSDT"])), seed=args.seed)
        clock = VenueClock(speed=1.0)
    latency = _latency(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    key = new_api_key(USER_ACCOUNT)
    cfg = ServerConfig(host=args.host, port=args.port)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with VenueServer(venue, [key], config=cfg, clock=clock, latency=latency) as server:
            urls = server.urls
            path = write_keys_file(args.keys_file or _default_keys_path(), key, **urls)
            print(f"rest: {urls['rest']}\nstream: {urls['stream']}\nws-api: {urls['ws_api']}\nkeys: {path}", flush=True)

            async def fault_at(seconds, kind, fargs):
                await asyncio.sleep(seconds)
                logging.getLogger("workbench.venue").info(_apply_fault(server, kind, fargs))

            tasks = [asyncio.create_task(fault_at(*f)) for f in faults]
            await stop.wait()
            for t in tasks:
                t.cancel()
        logging.getLogger("workbench.venue").info("stopped")

    from workbench.aio import run

    run(serve())
    return 0


# -- strategies and backtests ----------------------------------------------------------------------------------------
def cmd_strategies(args) -> int:
    from workbench.strategy import STRATEGIES

    for name, cls in STRATEGIES.items():
        print(f"{name}: {cls.summary}" + (f" ({cls.n_symbols} instruments)" if cls.n_symbols != 1 else ""))
        for p in cls.params_spec:
            rng = ("|".join(p.choices) if p.choices else
                   f"[{'' if p.lo is None else _num(p.lo)}, {'' if p.hi is None else _num(p.hi)}]")
            unit = f" {p.unit}" if p.unit else ""
            print(f"  {p.name:<20} {p.kind.__name__:<5} default {p.default!s:<10} {rng}{unit}  {p.doc}")
    return 0


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _params(pairs: list[str]) -> dict[str, str]:
    out = {}
    for kv in pairs:
        k, eq, v = kv.partition("=")
        if not eq or not k:
            raise ConfigError(f"--param {kv!r}: expected NAME=VALUE")
        out[k.strip()] = v.strip()
    return out


def cmd_backtest(args) -> int:
    from dataclasses import replace

    from workbench.backtest import Backtest, BacktestConfig, MarketData
    from workbench.data.recording import load_recording, split_symbol
    from workbench.instrument import Instrument
    from workbench.strategy import strategy_class
    from workbench.venue.api import FeeSchedule
    from workbench.venue.latency import LatencyModel

    cls = strategy_class(args.strategy)
    strategy = cls(**_params(args.param))
    datas = []
    if args.synthetic is not None:
        from workbench.venue.synthetic import SyntheticVenue

        if not args.synthetic > 0:
            raise ConfigError("--synthetic takes a number of seconds > 0")
        venue = SyntheticVenue.default(seed=args.seed)
        for sym, events in venue.record(args.synthetic).items():
            spec = venue.symbols[sym]
            datas.append(MarketData(spec.instrument, events, spec.base_asset, spec.quote_asset))
    for paths in args.data or []:
        ins, events = load_recording(paths, _instrument(args))
        if any(d.symbol == ins.symbol for d in datas):  # the same symbol on two markets (spot and futures)
            ins = Instrument(f"{ins.symbol}-{len(datas) + 1}", ins.tick_size, ins.lot_size)
        base, quote = split_symbol(ins.symbol.split("-")[0])
        datas.append(MarketData(ins, events, base, quote))
    cfg = BacktestConfig(seed=args.seed, progress=args.progress)
    if args.latency_ms is not None:
        if args.latency_ms < 0:
            raise ConfigError("--latency-ms must be >= 0")
        ns = round(args.latency_ms * 1_000_000)
        cfg = replace(cfg, latency=LatencyModel.constant(ns, ns))
    if args.fees_bp is not None:
        try:
            maker, taker = (float(x) for x in args.fees_bp.split(","))
        except ValueError:
            raise ConfigError(f"--fees-bp {args.fees_bp!r}: expected MAKER,TAKER in bp, e.g. -0.5,7") from None
        cfg = replace(cfg, fees=FeeSchedule(round(maker * 100), round(taker * 100)))
    if args.cash is not None:
        cfg = replace(cfg, initial_cash=args.cash)
    result = Backtest(strategy, datas, cfg).run()
    print(f"{cls.name} on {', '.join(d.symbol for d in datas)}: {result.counters['feed_messages']:,} feed messages, "
          f"{len(result.fills):,} fills, {len(result.risk_events):,} risk events, {result.wall_s:.2f} s")
    if result.error:
        print(f"strategy stopped: {result.error}")
    width = max(len(k) for k in result.metrics)
    for k, v in result.metrics.items():
        print(f"  {k:<{width}}  {v:,.6g}" if isinstance(v, float) else f"  {k:<{width}}  {v}")
    econ = result.economics()
    if econ.n_round_trips:
        print("unit economics (per day of this run's length):")
        print(econ.table().to_string(max_colwidth=60))
    if args.out:
        paths = result.to_parquet(args.out)
        print(f"results: {', '.join(str(p) for p in paths)}")
    return 0


# -- live ------------------------------------------------------------------------------------------------------------
_BINANCE = {
    "binance": ("https://api.binance.com", "wss://stream.binance.com:9443", "wss://ws-api.binance.com:443/ws-api/v3"),
    "binance-testnet": ("https://testnet.binance.vision", "wss://stream.testnet.binance.vision",
                        "wss://ws-api.testnet.binance.vision/ws-api/v3"),
}


def cmd_run(args) -> int:
    import signal
    import threading

    from workbench.live import Credentials, Engine, EngineConfig
    from workbench.strategy import strategy_class

    strategy = strategy_class(args.strategy)(**_params(args.param))
    symbols = tuple(s.upper() for s in (args.symbol or ["BTCUSDT"]))
    if args.venue in _BINANCE:
        rest, stream, ws_api = _BINANCE[args.venue]
        cred = Credentials.from_env()  # WORKBENCH_API_KEY / WORKBENCH_API_SECRET: never on the command line
        cfg = EngineConfig(rest=rest, stream=stream, ws_api=ws_api, credentials=cred, symbols=symbols,
                           journal_path=args.journal)
    else:
        if not Path(args.venue).is_file():
            raise ConfigError(f"--venue {args.venue!r}: not binance, binance-testnet, or a keys file")
        cfg = EngineConfig.from_keys_file(args.venue, symbols, journal_path=args.journal)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    engine = Engine(strategy, cfg).start()
    print(f"running {strategy.name} on {', '.join(symbols)} at {cfg.ws_api}\ncontrol: {engine.control_url}\n"
          f"token: {engine.control_token}", flush=True)  # the token, once: what `workbench kill` needs
    done.wait(args.duration)
    engine.stop()
    snap = engine.snapshot()
    print(f"stopped: {engine.counters['orders_sent']} orders, {engine.counters['fills']} fills, "
          f"positions {snap.positions}, P&L {snap.equity_change:,.4f}, guard {snap.guard_state}"
          + (f", strategy error: {snap.last_error}" if snap.last_error else ""), flush=True)
    return 0


def cmd_kill(args) -> int:
    import json

    from websockets.sync.client import connect

    from websockets.exceptions import InvalidStatus, WebSocketException

    try:
        with connect(args.control, additional_headers={"Authorization": f"Bearer {args.token}"},
                     open_timeout=10) as ws:
            ws.send(json.dumps({"id": 1, "cmd": "kill", "params": {"reason": args.reason}}))
            while True:
                msg = json.loads(ws.recv(args.timeout))
                if msg.get("id") == 1:
                    break
    except InvalidStatus as exc:
        raise ConfigError(f"the engine refused the connection (HTTP {exc.response.status_code}): wrong token?") \
            from None
    except (OSError, TimeoutError, WebSocketException) as exc:
        raise ConfigError(f"cannot reach the engine at {args.control}: {type(exc).__name__}: {exc}") from None
    if not msg.get("ok"):
        raise ConfigError(f"the engine refused: {msg.get('error')}")
    print("killed: the venue confirms no open order and flat positions" if msg.get("result") else
          "kill sent; the venue has not confirmed flat yet (see the engine's snapshot)")
    return 0 if msg.get("result") else 1


def cmd_dashboard(args) -> int:
    import subprocess

    from workbench.apps import voila_command

    env = dict(os.environ)
    token = args.token or os.environ.get("WORKBENCH_CONTROL_TOKEN")
    if args.control:
        if not token:
            raise ConfigError("--control needs the engine's token (--token, or WORKBENCH_CONTROL_TOKEN)")
        env["WORKBENCH_CONTROL_URL"], env["WORKBENCH_CONTROL_TOKEN"] = args.control, token
    cmd = voila_command(args.app, port=args.port, open_browser=not args.no_browser, cull_idle_s=args.cull_idle)
    print(f"serving the {args.app} on http://127.0.0.1:{args.port}/ "
          + (f"attached to {args.control}" if args.control else "with the embedded simulated venue"), flush=True)
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)  # Voila in place of this process: Ctrl-C and signals reach it directly
    return subprocess.call(cmd, env=env)


def cmd_lab(args) -> int:
    import subprocess

    from workbench.apps import lab_command

    return subprocess.call(lab_command(port=args.port, open_browser=not args.no_browser))


# -- entry point ---------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Jupyter-native workbench for micro-trading")
    sub = p.add_subparsers(dest="command", required=True)

    def instrument_opts(sp):
        sp.add_argument("--tick-size", help="price increment, e.g. 0.01 (default: known or inferred)")
        sp.add_argument("--lot-size", help="size increment, e.g. 0.00001 (default: known or inferred)")
        sp.add_argument("--symbol", help="symbol name when --tick-size/--lot-size are given")

    b = sub.add_parser("book", help="rebuild the order book of a recording, one row per message or diff")
    b.add_argument("paths", nargs="+", help="LOBSTER message file, or consecutive Binance capture files")
    b.add_argument("--format", required=True, choices=["lobster", "binance"])
    b.add_argument("-o", "--output", required=True, help="output CSV ('-' for stdout)")
    instrument_opts(b)
    b.set_defaults(func=cmd_book)

    c = sub.add_parser("convert", help="convert a recording into the workbench's Parquet events")
    c.add_argument("paths", nargs="+", help="Binance captures | a LOBSTER message file | equity quote and trade zips")
    c.add_argument("--format", required=True, choices=["binance", "lobster", "equity"])
    c.add_argument("-o", "--output", required=True, help="output .parquet file")
    instrument_opts(c)
    c.set_defaults(func=cmd_convert)

    v = sub.add_parser("venue", help="serve the simulated exchange (Binance Spot protocol) on 127.0.0.1")
    src = v.add_mutually_exclusive_group()
    src.add_argument("--synthetic", action="store_true", help="the embedded synthetic market (the default)")
    src.add_argument("--replay", nargs="+", metavar="PATH", help="replay a Binance capture, LOBSTER or Parquet file")
    v.add_argument("--symbol", action="append", help="symbol of the synthetic market (repeatable; default BTCUSDT)")
    v.add_argument("--tick-size", help="price increment of a replayed capture (default: known or inferred)")
    v.add_argument("--lot-size", help="size increment of a replayed capture (default: known or inferred)")
    v.add_argument("--speed", type=float, default=1.0, help="replay speed (inf: as fast as clients read)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    v.add_argument("--keys-file", help="where to write the API keys JSON (mode 0600)")
    v.add_argument("--seed", type=int, default=1, help="seed of the market model and queue draws")
    v.add_argument("--latency-ms", metavar="FEED[,ORDER[,RESPONSE]]",
                   help="constant latency legs in ms of venue time: market data, order entry, response (default "
                        "RESPONSE = ORDER)")
    v.add_argument("--latency-from-recording", action="store_true",
                   help="with --replay: sample the feed leg from the recording's receive-minus-exchange times "
                        "(plus FEED of --latency-ms)")
    v.add_argument("--fault", action="append", default=[], metavar="KIND@S[:ARG]",
                   help="inject a fault S seconds after start: drop-depth[:N], stale-snapshot[:N], disconnect, "
                        "shutdown, error:METHOD:CODE[:TIMES], unknown-status[:METHOD]")
    v.set_defaults(func=cmd_venue)
    v.set_defaults(symbol_for_instrument=None)

    st = sub.add_parser("strategies", help="list the shipped strategies and their parameters")
    st.set_defaults(func=cmd_strategies)

    bt = sub.add_parser("backtest", help="backtest a strategy on a recording through the simulated venue")
    bt.add_argument("--strategy", required=True, help="a name from `workbench strategies`")
    src = bt.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", action="append", nargs="+", metavar="PATH",
                     help="one instrument's recording (consecutive captures in order); repeat for each instrument")
    src.add_argument("--synthetic", type=float, metavar="SECONDS",
                     help="this many seconds of the embedded synthetic BTCUSDT market (seeded by --seed)")
    bt.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a strategy parameter")
    bt.add_argument("--latency-ms", type=float, help="constant latency of each leg, ms (default 1)")
    bt.add_argument("--fees-bp", metavar="MAKER,TAKER", help="fees in bp (negative maker: a rebate, written --fees-bp=-0.5,7; default 10,10)")
    bt.add_argument("--cash", help="initial equity in quote currency (default 100000)")
    bt.add_argument("--seed", type=int, default=0, help="seed of the queue model's and latency's draws")
    bt.add_argument("--out", help="write fills, orders, equity, risk events and metrics as Parquet here")
    bt.add_argument("--progress", action="store_true", help="show a progress bar")
    bt.add_argument("--tick-size", help="price increment of the recording (default: known or inferred)")
    bt.add_argument("--lot-size", help="size increment of the recording (default: known or inferred)")
    bt.set_defaults(func=cmd_backtest, symbol=None)

    ru = sub.add_parser("run", help="run a strategy live on a venue, headless")
    ru.add_argument("--strategy", required=True, help="a name from `workbench strategies`")
    ru.add_argument("--venue", required=True,
                    help="binance | binance-testnet (keys from WORKBENCH_API_KEY/_SECRET) | the keys file of "
                         "`workbench venue`")
    ru.add_argument("--symbol", action="append", help="symbol to trade (repeatable; default BTCUSDT)")
    ru.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a strategy parameter")
    ru.add_argument("--journal", help="SQLite journal (restores positions and open orders after a crash)")
    ru.add_argument("--duration", type=float, help="stop after this many seconds (default: until interrupted)")
    ru.set_defaults(func=cmd_run)

    k = sub.add_parser("kill", help="kill a running engine through its control plane")
    k.add_argument("--control", required=True, help="the control URL `workbench run` printed")
    k.add_argument("--token", required=True, help="the token `workbench run` printed")
    k.add_argument("--reason", default="kill from the command line")
    k.add_argument("--timeout", type=float, default=30.0)
    k.set_defaults(func=cmd_kill)

    d = sub.add_parser("dashboard", help="serve the monitoring dashboard (Voila) on 127.0.0.1")
    d.add_argument("--port", type=int, default=8866)
    d.add_argument("--control", help="attach to this engine's control plane (else: the embedded venue and an engine)")
    d.add_argument("--token", help="the engine's control token (or WORKBENCH_CONTROL_TOKEN)")
    d.add_argument("--app", default="dashboard", help="dashboard | calculator | a notebook path")
    d.add_argument("--no-browser", action="store_true", help="do not open a browser (the URL is printed)")
    d.add_argument("--cull-idle", type=int, default=600, help="free a kernel with no page this many seconds")
    d.set_defaults(func=cmd_dashboard)

    la = sub.add_parser("lab", help="open JupyterLab on the notebooks (127.0.0.1)")
    la.add_argument("--port", type=int, default=8888)
    la.add_argument("--no-browser", action="store_true")
    la.set_defaults(func=cmd_lab)

    r = sub.add_parser("replay", help="replay a Binance capture and print book and signal statistics")
    r.add_argument("paths", nargs="*", help="capture files (default: the spot BTCUSDT capture in ../shared/data)")
    instrument_opts(r)
    r.set_defaults(func=cmd_replay)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (DataError, ConfigError) as exc:
        print(f"workbench {args.command}: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:  # e.g. piped into head
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
