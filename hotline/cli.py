"""The ``hotline`` command line.

Every command takes ``--store URL`` (default: ``HOTLINE_STORE``). Errors a
user can cause end in one line on stderr and a non-zero exit: 1 for a
refused operation, 2 for a usage mistake; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from hotline.errors import HotlineError, InvalidInput
from hotline.settings import Settings, get_settings

log = logging.getLogger("hotline")

Handler = Callable[[argparse.Namespace, Settings], int]


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


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
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    generator = DemoGenerator(default_gazetteer(), default_taxonomy(), seed=args.seed, rate=args.rate)
    rows, truth = generator.generate(args.days, args.start)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out)
    truth_file = truth_path(out)
    truth_file.write_text(json.dumps(truth.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"wrote {len(rows)} calls over {args.days} days to {out}; "
          f"ground truth of {len(truth.events)} events and {len(truth.surges)} surges in {truth_file}")
    return 0


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
    from hotline.places import default_gazetteer
    from hotline.taxonomy import default_taxonomy

    return CaseBuilder(default_gazetteer(), default_taxonomy(), settings.max_text_chars, source=source)


def _open(settings: Settings) -> Any:
    from hotline.store import open_store

    return open_store(settings.store)


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.ingest import ingest

    path = Path(args.file)
    store = _open(settings)
    try:
        report = ingest(path, store, _builder(settings, path.name), _column_map(args),
                        Path(args.rejects) if args.rejects else None, progress=True)
    finally:
        store.close()
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

    for line in sys.stdin:
        sys.stdout.write(pii.mask(line))
    return 0


def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.text import pii, transcript

    parsed = transcript.parse(sys.stdin.read())
    account = pii.mask(parsed.caller_account())
    if args.json:
        turns = [{"speaker": t.speaker.value, "text": pii.mask(t.text), "start": t.start, "end": t.end} for t in parsed.turns]
        print(json.dumps({"form": parsed.form, "caller_account": account, "turns": turns}, ensure_ascii=False))
    else:
        print(account)
    return 0


def cmd_cases_search(args: argparse.Namespace, settings: Settings) -> int:
    from hotline.store import CaseQuery

    query = CaseQuery(
        text=" ".join(args.query),
        start=datetime.combine(args.date_from, datetime.min.time()) if args.date_from else None,
        end=datetime.combine(args.date_to, datetime.max.time().replace(microsecond=0)) if args.date_to else None,
        district=args.district or "", category=args.category or "", department=args.department or "",
        status=args.status or "", limit=args.limit, offset=args.offset,
    )
    store = _open(settings)
    try:
        page = store.search(query)
    finally:
        store.close()
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
    store = _open(settings)
    try:
        case = store.get(args.id)
        history = store.label_history(args.id)
    finally:
        store.close()
    data = case.to_dict()
    data["label_history"] = [
        {"kind": h.source.kind.value, "by": h.source.by, "at": str(h.source.at),
         "category": h.category.path if h.category else None, "departments": list(h.departments)}
        for h in history
    ]
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    return 0


def cmd_summary(args: argparse.Namespace, settings: Settings) -> int:
    store = _open(settings)
    try:
        summary = store.summary()
    finally:
        store.close()
    print(f"store {settings.store}: {summary.total} cases", end="")
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


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the demo data once, import it, and show what is in the store."""
    out = Path(args.out)
    if not out.exists():
        generated = argparse.Namespace(days=args.days, seed=args.seed, rate=args.rate, start=args.start, out=str(out))
        cmd_generate(generated, settings)
    ingest_args = argparse.Namespace(file=str(out), rejects=None, **{f"{n}_col": None for n in _COLUMN_FLAGS})
    cmd_ingest(ingest_args, settings)
    return cmd_summary(args, settings)


# ---------------------------------------------------------------- parser
_COLUMN_FLAGS = ("id", "transcript", "text", "title", "time", "channel", "caller", "area", "street", "address",
                 "category", "department", "status")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="URL", help="store URL (default: HOTLINE_STORE or sqlite:///var/hotline.db)")
    common.add_argument("-v", "--verbose", action="store_true", help="log progress details")

    parser = argparse.ArgumentParser(prog="hotline", description="12345 hotline intelligence engine", parents=[common])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    gen = commands.add_parser("generate", parents=[common], help="write realistic demo calls and their ground truth")
    gen.add_argument("--days", type=_positive, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, metavar="FILE.csv")
    gen.add_argument("--start", type=_date, default=date(2025, 1, 1), help="first day (default 2025-01-01)")
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
    search.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD")
    search.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD")
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

    demo = commands.add_parser("demo", parents=[common], help="generate (once) and import the demo data")
    demo.add_argument("--out", default="var/demo/calls.csv")
    demo.add_argument("--days", type=_positive, default=180)
    demo.add_argument("--seed", type=int, default=12345)
    demo.add_argument("--rate", type=float, default=150.0)
    demo.add_argument("--start", type=_date, default=date(2025, 6, 1))
    demo.set_defaults(handler=cmd_demo)
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
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = get_settings()
        if args.store:
            settings = settings.model_copy(update={"store": args.store})
        return int(args.handler(args, settings))
    except HotlineError as exc:
        print(f"hotline: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InvalidInput) else 1
    except ValueError as exc:  # settings from the environment that do not validate
        print(f"hotline: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hotline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
