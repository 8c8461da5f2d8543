"""The ``hotline`` command line.

Every command takes ``--store URL`` (default: ``HOTLINE_STORE``). Errors a
user can cause end in one line on stderr and a non-zero exit: 1 for a
refused operation, 2 for a usage mistake; never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hotline.errors import HotlineError, InvalidInput
from hotline.settings import Settings, get_settings
from hotline.times import city_now, zone

log = logging.getLogger("hotline")

Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True)
class DaysAgo:
    """A day given relative to today (``today``, ``yesterday``, ``today-7``): which day that is depends on the
    city's zone, known only once the settings are read, so :func:`main` resolves it before the command runs."""

    days: int

    def on(self, today: date) -> date:
        return today - timedelta(days=self.days)


_DAYS_AGO = re.compile(r"today\s*-\s*(\d{1,5})")


def day_argument(value: str) -> date | DaysAgo:
    """An argparse type for a day: YYYY-MM-DD, ``today``, ``yesterday`` or ``today-N`` (shared by the commands
    of every package, so that a command written down once keeps working on later days)."""
    text = value.strip().lower()
    if text in ("today", "yesterday"):
        return DaysAgo(0 if text == "today" else 1)
    relative = _DAYS_AGO.fullmatch(text)
    if relative:
        return DaysAgo(int(relative.group(1)))
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD, today, yesterday or today-N): {value!r}") from None


def resolve_days(args: argparse.Namespace, today: date) -> None:
    """Turn every relative day of the parsed arguments into the date it names."""
    for name, value in vars(args).items():
        if isinstance(value, DaysAgo):
            setattr(args, name, value.on(today))


class Renamed(argparse.Action):
    """An option's old spelling: it still works, and says once on stderr what it is called now.

    ``--model`` named a kind in ``train``/``retrain`` and a directory in
    ``evaluate``/``predict``/``route``; it keeps the second meaning and the
    first is ``--kind``. ``--start``/``--end`` are ``--from``/``--to`` everywhere.
    """

    def __init__(self, *args: Any, now: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = now

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"hotline: note: {option_string} is now {self.now}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def city(settings: Settings) -> Any:
    """The city the settings name (gazetteer, taxonomy, routing rules, segmenter), read once per process."""
    from hotline.city import City

    key = (settings.gazetteer, settings.taxonomy, settings.routing_rules, settings.segmenter)
    if key not in _CITIES:
        _CITIES[key] = City.from_settings(settings)
    return _CITIES[key]


_CITIES: dict[tuple[Any, ...], Any] = {}


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


# ---------------------------------------------------------------- commands
def cmd_generate(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.demo.generator import DemoGenerator, truth_path, write_csv

    start = _generated_start(args)
    here = city(settings)
    generator = DemoGenerator(here.gazetteer, here.taxonomy, seed=args.seed, rate=args.rate)
    rows, truth = generator.generate(args.days, start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out)
    truth_file = truth_path(out)
    truth_file.write_text(json.dumps(truth.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {len(rows)} calls over {args.days} days to {out}; "
          f"ground truth of {len(truth.events)} events and {len(truth.surges)} surges in {truth_file}")
    return 0


def _generated_start(args: argparse.Namespace) -> date:
    """The first day to generate: ``--start``, or so that the last day is ``--end`` (today by default).

    Demo calls dated after tomorrow would be refused on import (and once made
    `generate --days 365` write next year's calls), so they are refused here.
    """
    end = args.end or date.today()
    start = args.start or end - timedelta(days=args.days - 1)
    last = start + timedelta(days=args.days - 1)
    if last > date.today() + timedelta(days=1):
        raise InvalidInput(f"{args.days} days from {start} end on {last}, after tomorrow; "
                           f"give an earlier --start or fewer --days")
    return start


def _column_map(args: argparse.Namespace) -> Any:
    from hotline.ingest import ColumnMap

    return ColumnMap(
        id=args.id_col, transcript=args.transcript_col, text=args.text_col, title=args.title_col,
        time=args.time_col, channel=args.channel_col, caller=args.caller_col, district=args.area_col,
        street=args.street_col, address=args.address_col, category=args.category_col,
        department=args.department_col, status=args.status_col,
    )


def _builder(settings: Settings, source: str) -> Any:
    from hotline.ingest import CaseBuilder

    here = city(settings)
    return CaseBuilder(here.gazetteer, here.taxonomy, settings.max_text_chars, source=source,
                       window=settings.time_window())


@contextmanager
def _opened(settings: Settings) -> Iterator[Any]:
    """The store of ``settings``, closed when the block ends however it ends."""
    from hotline.store import open_store

    store = open_store(settings.store, tokenize=lambda text: city(settings).segmenter.tokens(text), zone=settings.timezone)
    try:
        yield store
    finally:
        store.close()


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.ingest import ingest

    path = Path(args.file)
    with _opened(settings) as store:
        report = ingest(path, store, _builder(settings, path.name), _column_map(args),
                        Path(args.rejects) if args.rejects else None, progress=True)
    rate = report.accepted / report.seconds if report.seconds else 0.0
    print(f"{path.name} ({report.encoding}): {report.read} rows read, {report.accepted} accepted "
          f"({report.inserted} new, {report.updated} updated, {report.unchanged} unchanged), "
          f"{report.rejected} rejected; {report.seconds:.1f} s, {rate:.0f} cases/s")
    if report.rejects_path:
        reasons = ", ".join(f"{k} ×{v}" for k, v in sorted(report.reasons.items(), key=lambda kv: -kv[1]))
        print(f"rejected rows with reasons: {report.rejects_path} ({reasons})")
    return 0


def cmd_mask(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.text import pii

    # The whole input at once: a number dictated across lines of a dialogue is one number.
    sys.stdout.write(pii.mask(sys.stdin.read()))
    return 0


def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.text import pii, transcript

    parsed, _ = transcript.masked(sys.stdin.read(), pii.mask)
    account = pii.mask(parsed.caller_account())
    if args.json:
        turns = [{"speaker": t.speaker.value, "text": pii.mask(t.text), "start": t.start, "end": t.end} for t in parsed.turns]
        print(json.dumps({"form": parsed.form, "caller_account": account, "turns": turns}, ensure_ascii=False))
    else:
        print(account)
    return 0


def cmd_cases_search(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.store import CaseQuery

    query = CaseQuery.days(
        args.date_from, args.date_to, text=" ".join(args.query),
        district=args.district or "", category=args.category or "", department=args.department or "",
        status=args.status or "", limit=args.limit, offset=args.offset,
    )
    with _opened(settings) as store:
        page = store.search(query)
    if args.json:
        for case in page.items:
            print(json.dumps(case.to_dict(), ensure_ascii=False))
        return 0
    print(f"{page.total} cases match; showing {len(page.items)} from {query.offset + 1}")
    for case in page.items:
        category = case.category.path if case.category else "(未分类)"
        snippet = case.text.replace("\n", " ")[:60]
        print(f"{case.id}  {case.received_at:%Y-%m-%d %H:%M}  {case.area or '(未知区域)'}  {category}  {snippet}")
    return 0


def cmd_cases_show(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as store:
        case = store.get(args.id)
        history = store.label_history(args.id)
        changes = store.case_history(args.id)
    data = case.to_dict()
    data["label_history"] = [h.to_dict() for h in history]
    data["content_changes"] = [{"at": str(c.at), "by": c.by, "changes": c.changes} for c in changes]
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.store.base import redacted

    with _opened(settings) as store:
        summary = store.summary()
    print(f"store {redacted(settings.store)}: {summary.total} cases", end="")
    if summary.total:
        print(f", {summary.first:%Y-%m-%d} to {summary.last:%Y-%m-%d}; "
              f"{summary.labeled} with a category ({summary.confirmed} confirmed by agents)")
    else:
        print()
    for title, counts in (("category", summary.by_category), ("district", summary.by_district),
                          ("channel", summary.by_channel), ("status", summary.by_status)):
        if counts:
            top = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
            print(f"  by {title}: {top}")
    return 0


def cmd_aggregates_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as store:
        before = sum(c.count for c in store.counts())
        rows = store.rebuild_aggregates()
        after = sum(c.count for c in store.counts())
        _assigned(store, settings)
    note = "unchanged" if before == after else f"they had counted {before}"
    print(f"daily counts, word counts and events rebuilt: {rows} count rows, {after} cases ({note})")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the demo data once, import it, and show what is in the store."""
    out = Path(args.out)
    if not out.exists():
        generated = argparse.Namespace(days=args.days, seed=args.seed, rate=args.rate, start=args.start, end=None,
                                       out=str(out))
        cmd_generate(generated, settings)
    marker = out.with_name(out.name + ".imported")  # which store holds this generated file, and how many cases
    stamp = {"store": hashlib.sha256(settings.store.encode()).hexdigest()[:16], "size": out.stat().st_size,
             "mtime_ns": out.stat().st_mtime_ns}
    with _opened(settings) as store:
        held = store.summary().total
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    if {k: recorded.get(k) for k in stamp} == stamp and held >= recorded.get("cases", 0) > 0:
        print(f"the store already holds {out} ({recorded['cases']} cases): nothing to import "
              f"(remove {out.parent} to generate new demo calls)", file=sys.stderr)
    else:
        ingest_args = argparse.Namespace(file=str(out), rejects=None, **{f"{n}_col": None for n in _COLUMN_FLAGS})
        cmd_ingest(ingest_args, settings)
        with _opened(settings) as store:
            marker.write_text(json.dumps({**stamp, "cases": store.summary().total}), encoding="utf-8")
    return cmd_summary(args, settings)


# ---------------------------------------------------------------- hotspots, forecasts, events, report
def _table(args: argparse.Namespace, settings: Settings, start: date, end: date) -> Any:
    """The daily counts per cell from ``HISTORY_DAYS`` before ``start`` to ``end``: the store's, as every view
    reads them, or those of the rows of ``--data`` (each counting one); areas are ``district·street`` with
    ``--level street``."""
    from hotline.analytics.hotspots.cells import cell_area
    from hotline.analytics.hotspots.series import HISTORY_DAYS, CountTable
    from hotline.analytics.hotspots.surges import level_table

    since = start - timedelta(days=HISTORY_DAYS)
    street = args.level == "street"
    if args.data:
        from hotline.ingest import parse_time, read_records

        header, records, _ = read_records(Path(args.data))
        for name in (args.time_col, args.area_col, args.category_col) + ((args.street_col,) if street else ()):
            if name not in header:
                raise InvalidInput(f"column {name!r} is not in {args.data}; columns: {header}")
        found, skipped = [], 0
        for record in records:
            values = record.values
            try:
                day = parse_time(values.get(args.time_col)).date()
            except InvalidInput:
                skipped += 1
                continue
            area, category = (str(values.get(c) or "").strip() for c in (args.area_col, args.category_col))
            if not area or not category:
                skipped += 1
                continue
            if street:
                area = cell_area(area, str(values.get(args.street_col) or "").strip())
            if since <= day <= end:
                found.append((day, area, category, 1))
        if skipped:
            print(f"hotline: {skipped} rows without a time, area or category were left out", file=sys.stderr)
        if not found:
            raise InvalidInput(f"no rows of {args.data} fall between {since} and {end}")
        return CountTable.from_counts(found, end=end)
    with _opened(settings) as store:
        return level_table(store, start, end, args.level)


def _neighbours(settings: Settings) -> dict[str, list[str]]:
    """Each district's neighbours, nearest first (for the scan)."""
    from hotline.analytics.events import distance_km

    districts = city(settings).gazetteer.districts
    return {name: sorted(d.neighbors, key=lambda n: distance_km(d.center, districts[n].center) if n in districts else 1e9)
            for name, d in districts.items()}


def cmd_hotspots(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics.hotspots.surges import find_surges
    from hotline.spreadsheet import SafeDictWriter

    if args.end < args.start:
        raise InvalidInput(f"--end {args.end} is before --start {args.start}")
    table = _table(args, settings, args.start, args.end)
    if args.start < table.start:
        raise InvalidInput(f"--start {args.start} is before the first case ({table.start})")
    found = find_surges(table, args.start, args.end, args.level, getattr(args, "method", None), alpha=args.alpha,
                        neighbours=_neighbours(settings))
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out != "-" else sys.stdout
    try:
        writer = SafeDictWriter(out, fieldnames=["date", "area", "category", "observed", "expected", "score", "method"])
        writer.writeheader()
        writer.writerows(a.row() for a in found.alerts)
    finally:
        if out is not sys.stdout:
            out.close()
    days = (args.end - args.start).days + 1
    print(f"{len(found.alerts)} alerts over {days} days × {len(table.cells)} cells ({found.method})", file=sys.stderr)
    return 0


def cmd_episodes(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics.events import link_events
    from hotline.analytics.hotspots.surges import find_surges

    if args.end < args.start:
        raise InvalidInput(f"--end {args.end} is before --start {args.start}")
    table = _table(args, settings, args.start, args.end)
    found = find_surges(table, args.start, args.end, args.level, min_calls=args.min_calls, top=args.top).episodes
    if not args.data:  # the store keeps the events to link
        with _opened(settings) as store:
            link_events(_assigned(store, settings), found, args.start, args.end)
    print(json.dumps([e.to_dict() for e in found], ensure_ascii=False, indent=1))
    return 0


def cmd_forecast(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics.hotspots.forecast import forecast, rising

    found = forecast(_table(args, settings, args.end, args.end), horizon=args.horizon)
    chosen = rising(found, top=args.top) if args.rising else found
    print(json.dumps([f.to_dict() for f in chosen], ensure_ascii=False, indent=1))
    return 0


def _assigned(store: Any, settings: Settings) -> Any:
    """The store, with every case that was waiting for its event given one (the service does this as cases
    arrive; a command run after an import does the rest first)."""
    from hotline.analytics.events import EventAssigner

    here = city(settings)
    waiting = store.event_backlog()
    if waiting:
        # After an import this takes about a second per 900 cases: said, with a bar, not half a minute of silence.
        from tqdm import tqdm

        assigner = EventAssigner(store, here.segmenter.tokens, here.gazetteer.landmarks)
        with tqdm(total=waiting, desc="assigning calls to events", unit="call", file=sys.stderr,
                  disable=waiting < 1000) as bar:
            while taken := assigner.run_once():
                bar.update(taken)
    return store


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics.events import kept_events

    with _opened(settings) as store:
        _assigned(store, settings)
        if not store.documents(args.start, args.end):
            raise InvalidInput(f"no cases between {args.start} and {args.end}")
        events = kept_events(store, args.start, args.end, min_size=args.min_size, top=args.top)
    print(json.dumps([e.to_dict() for e in events], ensure_ascii=False, indent=1))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics import reports

    with _opened(settings) as store:
        here = city(settings)
        report = reports.build(_assigned(store, settings), args.start, args.end, here.taxonomy.level1_of,
                               centers=here.gazetteer.centers())
    out = Path(args.out)
    _write_atomically(out, reports.render(report))
    print(f"wrote {out}: {report.total} cases, {len(report.episodes)} surges, {len(report.events)} events, "
          f"{len(report.forecasts)} rising cells, {len(report.terms)} new terms")
    return 0


def _write_atomically(out: Path, data: str | bytes) -> None:
    """Write ``out`` through a ``.part`` file, so a failed run never leaves half a file under the real name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(out.suffix + ".part")
    if isinstance(data, bytes):
        partial.write_bytes(data)
    else:
        partial.write_text(data, encoding="utf-8")
    partial.replace(out)


def cmd_worklist(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics import worklist

    if args.end < args.start:
        raise InvalidInput(f"--end {args.end} is before --start {args.start}")
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out != "-" else "json"
    export = worklist.exporter(suffix)[0] if suffix != "json" else None  # an unknown format fails before the work
    with _opened(settings) as store:
        items = worklist.build(_assigned(store, settings), args.start, args.end, city(settings).taxonomy, level=args.level)
    if export is not None:
        _write_atomically(Path(args.out), export(items))
    else:
        text = json.dumps([i.to_dict() for i in items], ensure_ascii=False, indent=1)
        if args.out == "-":
            print(text)
        else:
            _write_atomically(Path(args.out), text)
    states = Counter(i.state for i in items)
    print(f"{len(items)} items ({sum(i.kind == 'surge' for i in items)} surges, "
          f"{sum(i.kind == 'rising' for i in items)} rising); "
          + ", ".join(f"{worklist.STATE_NAMES[s]} {n}" for s, n in states.items())
          + ("" if args.out == "-" else f"; wrote {args.out}"), file=sys.stderr)
    return 0


def cmd_brief(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.analytics import brief, worklist

    out = Path(args.out)
    if out.suffix.lower() not in (".pdf", ".html", ".htm"):
        raise InvalidInput(f"--out {args.out}: the brief is written as .pdf or .html")
    start, end = brief.week_of(args.end)
    with _opened(settings) as store:
        items = worklist.build(_assigned(store, settings), start, end, city(settings).taxonomy, level=args.level)
    built = brief.build(items, end)
    _write_atomically(out, brief.render_pdf(built) if out.suffix.lower() == ".pdf" else brief.render_html(built))
    print(f"wrote {out}: the week {start} to {end}, {len(items)} items, {len(built.open)} to act on")
    return 0


# ---------------------------------------------------------------- parser
_COLUMN_FLAGS = ("id", "transcript", "text", "title", "time", "channel", "caller", "area", "street", "address",
                 "category", "department", "status")


def _level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--level", choices=("district", "street"), default="district",
                        help="cells by district, or by district and street (default method there: nb-fdr, "
                             "false alarms controlled across all street cells each day)")


def build_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a subcommand that is not given --store must not overwrite the one given before it
    # (`hotline --store URL ingest f.csv` once wrote into the default store).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", default=argparse.SUPPRESS,
                        help="store URL (default: HOTLINE_STORE or sqlite:///var/hotline.db)")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress details")

    parser = argparse.ArgumentParser(prog="hotline", description="12345 hotline intelligence engine", parents=[common],
                                     epilog="A DAY is YYYY-MM-DD, today, yesterday or today-N (N days before today, "
                                            "in the city's time zone).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser("generate", parents=[common], help="write realistic demo calls and their ground truth")
    gen.add_argument("--days", type=_positive, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, metavar="FILE.csv")
    gen.add_argument("--from", "--start", dest="start", type=day_argument, metavar="DAY",
                     help="first day (default: the days end on --to)")
    gen.add_argument("--to", "--end", dest="end", type=day_argument, metavar="DAY",
                     help="last day when --from is not given (default: today)")
    gen.add_argument("--rate", type=float, default=150.0, help="mean background calls per day")
    gen.set_defaults(handler=cmd_generate)

    ing = commands.add_parser("ingest", parents=[common], help="import a CSV, JSONL or XLSX file of cases")
    ing.add_argument("file")
    for name in _COLUMN_FLAGS:
        ing.add_argument(f"--{name}-col", dest=f"{name}_col", metavar="C", help=f"column holding the {name}")
    ing.add_argument("--rejects", metavar="FILE", help="where bad rows go (default var/rejects/NAME.rejects.csv)")
    ing.set_defaults(handler=cmd_ingest)

    mask = commands.add_parser("mask", parents=[common], help="mask personal data: stdin to stdout")
    mask.set_defaults(handler=cmd_mask)

    parse = commands.add_parser("parse", parents=[common], help="a transcript on stdin to the caller's account")
    parse.add_argument("--json", action="store_true", help="also print the turns")
    parse.set_defaults(handler=cmd_parse)

    cases = commands.add_parser("cases", parents=[common], help="find and show cases")
    case_commands = cases.add_subparsers(dest="cases_command", metavar="ACTION", required=True)
    search = case_commands.add_parser("search", parents=[common], help="search cases by words and filters")
    search.add_argument("query", nargs="*", help="words to look for (optional)")
    search.add_argument("--from", "--start", dest="date_from", type=day_argument, metavar="DAY")
    search.add_argument("--to", "--end", dest="date_to", type=day_argument, metavar="DAY")
    search.add_argument("--district")
    search.add_argument("--category", help="a category at any level, or a path 一级/二级")
    search.add_argument("--department")
    search.add_argument("--status")
    search.add_argument("--limit", type=_positive, default=20)
    search.add_argument("--offset", type=int, default=0)
    search.add_argument("--json", action="store_true", help="one JSON object per line")
    search.set_defaults(handler=cmd_cases_search)
    show = case_commands.add_parser("show", parents=[common], help="one case with its label history")
    show.add_argument("id")
    show.set_defaults(handler=cmd_cases_show)

    summary = commands.add_parser("summary", parents=[common], help="what the store holds")
    summary.set_defaults(handler=cmd_summary)

    aggregates = commands.add_parser("aggregates", parents=[common], help="the daily counts, word counts and events the store keeps on write")
    aggregate_commands = aggregates.add_subparsers(dest="aggregates_command", required=True, metavar="rebuild")
    rebuild = aggregate_commands.add_parser("rebuild", parents=[common],
                                            help="recompute them from the cases (after a restore, or to check them)")
    rebuild.set_defaults(handler=cmd_aggregates_rebuild)

    demo = commands.add_parser("demo", parents=[common], help="generate (once) and import the demo data")
    demo.add_argument("--out", default="var/demo/calls.csv")
    demo.add_argument("--days", type=_positive, default=400)
    demo.add_argument("--seed", type=int, default=12345)
    demo.add_argument("--rate", type=float, default=150.0)
    demo.add_argument("--from", "--start", dest="start", type=day_argument, metavar="DAY",
                      help="first day (default: the days end today)")
    demo.set_defaults(handler=cmd_demo)
    cells = argparse.ArgumentParser(add_help=False, parents=[common])
    cells.add_argument("--data", metavar="FILE", help="count cases of a file instead of the store")
    cells.add_argument("--time-col", default="received_at", metavar="C")
    cells.add_argument("--area-col", default="district", metavar="C")
    cells.add_argument("--category-col", default="category_l2", metavar="C")
    cells.add_argument("--street-col", default="street", metavar="C", help="with --data and --level street")
    _level_argument(cells)

    hot = commands.add_parser("hotspots", parents=[cells], help="surging (area, category) cells, day by day, prospectively")
    hot.add_argument("--from", "--start", dest="start", type=day_argument, required=True, metavar="DAY")
    hot.add_argument("--to", "--end", dest="end", type=day_argument, required=True, metavar="DAY")
    hot.add_argument("--out", default="-", metavar="FILE.csv", help="alerts CSV (default: stdout)")
    # Checked against the registry when the command runs (hotline.analytics.hotspots.detect.DETECTORS): reading it
    # here would load scipy into every command, `hotline mask` included.
    hot.add_argument("--method", metavar="NAME", help="a registered detector: nb (default), nb-fdr (default at "
                                                      "street level), ears-c1, ears-c2, ears-c3, scan …")
    hot.add_argument("--alpha", type=float, help="false-alarm level of the nb method (default 0.01: about one alert "
                                                 "per 200 quiet cell-days); of nb-fdr, its false discovery rate "
                                                 "(default 0.05)")
    hot.set_defaults(handler=cmd_hotspots)

    ep = commands.add_parser("episodes", parents=[cells],
                             help="surges to act on: each cell's consecutive alert days, most excess calls first (JSON)")
    ep.add_argument("--from", "--start", dest="start", type=day_argument, required=True, metavar="DAY")
    ep.add_argument("--to", "--end", dest="end", type=day_argument, required=True, metavar="DAY")
    ep.add_argument("--min-calls", type=_positive, default=5, help="calls an episode needs (default 5)")
    ep.add_argument("--top", type=_positive, default=20)
    ep.set_defaults(handler=cmd_episodes)

    fc = commands.add_parser("forecast", parents=[cells], help="daily counts per cell for the coming days (JSON)")
    fc.add_argument("--to", "--end", dest="end", type=day_argument, default="today", metavar="DAY",
                    help="last day of history (default: today, in the city's zone)")
    fc.add_argument("--horizon", type=_positive, default=14)
    fc.add_argument("--rising", action="store_true", help="only the cells expected to rise above normal")
    fc.add_argument("--top", type=_positive, default=20)
    fc.set_defaults(handler=cmd_forecast)

    ev = commands.add_parser("events", parents=[common], help="incidents many callers report (JSON)")
    ev.add_argument("--from", "--start", dest="start", type=day_argument, required=True, metavar="DAY")
    ev.add_argument("--to", "--end", dest="end", type=day_argument, required=True, metavar="DAY")
    ev.add_argument("--min-size", type=_positive, default=3)
    ev.add_argument("--top", type=_positive, default=20)
    ev.set_defaults(handler=cmd_events)

    rep = commands.add_parser("report", parents=[common], help="the supervisors' hotspot report (self-contained HTML)")
    rep.add_argument("--from", "--start", dest="start", type=day_argument, required=True, metavar="DAY")
    rep.add_argument("--to", "--end", dest="end", type=day_argument, required=True, metavar="DAY")
    rep.add_argument("--out", required=True, metavar="FILE.html")
    rep.set_defaults(handler=cmd_report)

    wl = commands.add_parser("worklist", parents=[common],
                             help="未诉先办: surges and rising cells with departments, calls, forecast and state")
    wl.add_argument("--from", "--start", dest="start", type=day_argument, required=True, metavar="DAY")
    wl.add_argument("--to", "--end", dest="end", type=day_argument, required=True, metavar="DAY")
    _level_argument(wl)
    wl.add_argument("--out", default="-", metavar="FILE.csv|.xlsx|.json", help="default: JSON on stdout")
    wl.set_defaults(handler=cmd_worklist)

    br = commands.add_parser("brief", parents=[common], help="the weekly brief (周报) of the work list, PDF or HTML")
    br.add_argument("--to", "--end", dest="end", type=day_argument, default="today", metavar="DAY",
                    help="last day of the week (default: today, in the city's zone)")
    _level_argument(br)
    br.add_argument("--out", required=True, metavar="FILE.pdf|.html")
    br.set_defaults(handler=cmd_brief)

    _add_plugins(commands, common)
    return parser


def _add_plugins(commands: Any, common: argparse.ArgumentParser) -> None:
    """Commands of the packages built on this one (``hotline.commands`` entry points).

    The core imports none of them; each registers its own subcommands.
    """
    from importlib.metadata import entry_points

    for entry in entry_points(group="hotline.commands"):
        try:
            register = entry.load()
        except ImportError as exc:
            log.warning("commands of %s are unavailable: %s", entry.name, exc)
            continue
        register(commands, common)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = get_settings()
        if getattr(args, "store", None):
            settings = settings.model_copy(update={"store": args.store})
        resolve_days(args, city_now(zone(settings.timezone)).date())
        city(settings).serve()  # the city's words for every segmenter of this run
        return int(args.handler(args, settings))
    except HotlineError as exc:
        print(f"hotline: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidInput) else 1
    except ValidationError as exc:  # settings from the environment that do not validate; any other error is a bug
        print(f"hotline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hotline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
