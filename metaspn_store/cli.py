"""``metaspn-store`` command: a thin shell over public methods.

Every command prints a human summary by default and one JSON document with ``--json``. Exit
codes: 0 success, 1 failure (one ``metaspn-store CMD: error: ...`` message on stderr), 2 usage
errors (argparse: bad options, a malformed date or number). Progress bars (tqdm) go to stderr
and only when stderr is a terminal and ``--json`` is not given, so piped and JSON output never
holds anything extra.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from metaspn_store import __version__
from metaspn_store.errors import StoreError

KINDS = ("signals", "emissions")
_FETCH_ROWS = 10_000


class CommandError(Exception):
    """A failure the command explains in one message (exit code 1)."""


# ---------------------------------------------------------------------------------- argument types


def _day(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "number"
    return parse


def _param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (used as $NAME in the query), got {text!r}")
    return name, value


# ---------------------------------------------------------------------------------- output helpers


def _progress_wanted(args: argparse.Namespace) -> bool:
    """Bars only for a person at a terminal: never with --json, never into a pipe or file."""
    if getattr(args, "json", False) or os.environ.get("TERM") == "dumb":
        return False
    return sys.stderr.isatty()


class _Bar:
    """A tqdm bar on stderr when wanted; otherwise a no-op with the same three methods."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def update(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)

    def say(self, line: str) -> None:
        """Print a line of the human output (above the bar, when there is one)."""
        if self._bar is not None:
            self._bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)


@contextmanager
def _bar(wanted: bool, *, total: int, unit: str, desc: str) -> Iterator[_Bar]:
    if not wanted:
        yield _Bar(None)
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True) as bar:
        yield _Bar(bar)


def _human_bytes(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n_units = n / 1000.0
        if n_units < 1000 or unit == "TB":
            return f"{n_units:.1f} {unit}"
        n = int(n_units)
    raise AssertionError("unreachable")


def _span(days: Sequence[str]) -> str:
    """Days as a reader wants them: a short list, or a range with a count."""
    if not days:
        return "-"
    if len(days) <= 3:
        return ", ".join(days)
    return f"{days[0]} .. {days[-1]} ({len(days)} days)"


def _entity(signal: Any) -> str:
    if not signal.entity_refs:
        return "(no entity)"
    ref = signal.entity_refs[0]
    return f"{ref.ref_type} {ref.value}" + (f" ({ref.platform})" if ref.platform else "")


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _open_existing(workspace: str, cold: str | None = None) -> Any:
    """Open a workspace that must already exist (opening creates folders, so look first).
    ``cold`` sets the workspace's cold location (remembered; credentials from the environment)."""
    from metaspn_store import FileSystemStore

    path = Path(workspace)
    if not (path / "store").is_dir():
        raise CommandError(
            f"{workspace} is not a metaspn-store workspace (no store/ folder); "
            f"`metaspn-store demo {shlex.quote(workspace)}` creates a sample one"
        )
    try:
        return FileSystemStore(path, cold=cold)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _print_json(document: Any) -> None:
    print(json.dumps(document, sort_keys=True, default=str))


# ---------------------------------------------------------------------------------- compaction


def _compact(
    store: Any, *, before: date | None, dry_run: bool, wait: bool, progress: bool
) -> dict[str, Any]:
    """``store.compact()`` one closed day at a time, so a bar can follow it; one merged report.

    Each day is its own commit anyway, so this is the same work as one call. A last call over the
    whole range picks up days that appeared meanwhile and removes unlisted files.
    """
    from metaspn_store._info import hot_days

    cutoff = before or (datetime.now(timezone.utc).date() - timedelta(days=1))  # compact()'s default
    days = sorted({d for kind in KINDS for d in hot_days(store.store_root, kind) if d < cutoff})
    reports = []
    with _bar(progress and bool(days), total=len(days), unit="day", desc="compacting") as bar:
        for day in days:
            bar.describe(f"compacting {day}")
            report = store.compact(before=day + timedelta(days=1), dry_run=dry_run, wait=wait)
            reports.append(report.to_dict())
            bar.update(1)
            if report.skipped:
                break
        if not dry_run and not (reports and reports[-1]["skipped"]):
            reports.append(store.compact(before=cutoff, dry_run=False, wait=wait).to_dict())
        elif not reports:
            reports.append(store.compact(before=cutoff, dry_run=True, wait=wait).to_dict())
    day_reports = sorted(
        (d for r in reports for d in r["days"]), key=lambda d: (KINDS.index(d["kind"]), d["day"])
    )
    merged: dict[str, Any] = {
        "before": cutoff.isoformat(),
        "dry_run": dry_run,
        "skipped": next((r["skipped"] for r in reports if r["skipped"]), None),
        "days": day_reports,
        "seconds": round(sum(r["seconds"] for r in reports), 4),
    }
    for key in ("records_in", "records_out", "bytes_in", "bytes_out"):
        merged[key] = sum(d[key] for d in day_reports)
    return merged


def _compaction_lines(report: dict[str, Any], *, indent: str = "") -> list[str]:
    """Per kind: which days, how many records, JSONL bytes in and (unless a dry run) Parquet out."""
    lines = []
    for kind in KINDS:
        days = [d for d in report["days"] if d["kind"] == kind]
        if not days:
            continue
        records = sum(d["records_out"] for d in days)
        jsonl = sum(d["bytes_in"] for d in days)
        line = f"{indent}{kind:<9}  {_span([d['day'] for d in days])}: {records:,} records, {_human_bytes(jsonl)} of JSONL"
        if not report["dry_run"]:
            parquet = sum(d["bytes_out"] for d in days)
            ratio = f" ({jsonl / parquet:.1f}x smaller)" if parquet else ""
            line += f" -> {_human_bytes(parquet)} of Parquet{ratio}"
        lines.append(line)
    duplicates = sum(d["duplicates_dropped"] for d in report["days"])
    malformed = sum(d["malformed"] for d in report["days"])
    verb = "would be" if report["dry_run"] else "were"
    if duplicates:
        lines.append(f"{indent}{duplicates:,} duplicate records {verb} dropped (an earlier record has the same id)")
    if malformed:
        where = "set aside in store/quarantine/"
        lines.append(f"{indent}{malformed:,} unreadable lines {verb} {where}")
    return lines


def compaction_summary(report: dict[str, Any]) -> list[str]:
    if report["skipped"]:
        return [f"compaction skipped: {report['skipped']}"]
    if not report["days"]:
        return [f"nothing to compact before {report['before']}: every closed day is already in Parquet"]
    if report["dry_run"]:
        head = f"dry run, nothing changed; compacting days before {report['before']} would move:"
    else:
        head = f"compacted days before {report['before']} from JSONL (hot tier) into Parquet (cold tier):"
    return [head, *_compaction_lines(report, indent="  ")]


# ---------------------------------------------------------------------------------- commands


def cmd_demo(args: argparse.Namespace) -> int:
    """Write sample data, compact the closed days, run the main read models, explain each step."""
    from metaspn_store import FileSystemStore
    from metaspn_store.sample import DEFAULT_EMISSION_RATIO, DEFAULT_START, hot_entities, iter_sample_days

    workspace = args.workspace
    progress = _progress_wanted(args)
    human = not args.json
    say: Callable[[str], None] = (lambda line: print(line, flush=True)) if human else (lambda line: None)
    first = DEFAULT_START
    last = first + timedelta(days=args.days - 1)
    window_start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    window_end = window_start + timedelta(days=args.days) - timedelta(microseconds=1)
    store = FileSystemStore(workspace)

    say(
        f"demo workspace {workspace}: {args.days} UTC day(s) of sample MetaSPN data, "
        f"{first} .. {last}, {args.signals_per_day:,} signals a day (seed {args.seed})"
    )
    say("writing (an id already in the store is a duplicate: the first record wins, nothing is written again)")

    def stored(kind: str) -> int:
        return int(store.sql(f"SELECT count(*) FROM {kind}").fetchall()[0][0])  # noqa: S608

    t0 = time.perf_counter()
    per_day: list[dict[str, Any]] = []
    emissions_per_day = round(DEFAULT_EMISSION_RATIO * args.signals_per_day)
    total = args.days * (args.signals_per_day + emissions_per_day)
    with _bar(progress, total=total, unit="records", desc="writing") as bar:
        before = {kind: stored(kind) for kind in KINDS}
        for day, signals, emissions in iter_sample_days(
            days=args.days, signals_per_day=args.signals_per_day, start=first, seed=args.seed
        ):
            bar.describe(f"writing {day}")
            row: dict[str, Any] = {"day": day.isoformat()}
            for kind, batch, write in (
                ("signals", signals, store.write_signals),
                ("emissions", emissions, store.write_emissions),
            ):
                write(batch)
                after = stored(kind)
                row[f"{kind}_new"] = after - before[kind]
                row[f"{kind}_duplicates"] = len(batch) - row[f"{kind}_new"]
                before[kind] = after
                bar.update(len(batch))
            per_day.append(row)
            if human:
                bar.say(
                    f"  {row['day']}  signals {row['signals_new']:>7,} new {row['signals_duplicates']:>7,} duplicate"
                    f"   emissions {row['emissions_new']:>6,} new {row['emissions_duplicates']:>6,} duplicate"
                )
    write_seconds = time.perf_counter() - t0
    written = {
        kind: {
            "new": sum(r[f"{kind}_new"] for r in per_day),
            "duplicates": sum(r[f"{kind}_duplicates"] for r in per_day),
        }
        for kind in KINDS
    }
    if written["signals"]["new"] or written["emissions"]["new"]:
        say(f"wrote {written['signals']['new']:,} new signals and {written['emissions']['new']:,} new emissions")
    else:
        say(
            f"wrote nothing new: all {written['signals']['duplicates']:,} signals and "
            f"{written['emissions']['duplicates']:,} emissions were already in the store (same ids)"
        )

    t1 = time.perf_counter()
    report = _compact(store, before=last, dry_run=False, wait=True, progress=progress)
    compact_seconds = time.perf_counter() - t1
    say("")
    say("compaction: writes append to one JSONL file per UTC day (the hot tier). Once a day is over,")
    say("`compact` rewrites it as compressed, column-wise Parquet (the cold tier): smaller, faster to scan.")
    say("Every read covers both tiers, so no answer changes.")
    if report["days"]:
        say(f"  closed days before {last} moved to Parquet; {last} stays hot, as today would:")
        for line in _compaction_lines(report, indent="  "):
            say(line)
    elif args.days == 1:
        say(f"  nothing to compact: {last}, the only day, stays hot, as today would")
    else:
        say(f"  nothing to compact: the days before {last} are already in Parquet")

    t2 = time.perf_counter()
    top = store.get_top_recommendation_candidates(
        start=window_start,
        end=window_end,
        limit=5,
        sources=["score.worker"],
        payload_types=["RecommendationCandidate"],
    )
    buckets = store.get_outcome_window_buckets(now=window_end, start=window_start, end=window_end)
    person = hot_entities(signals_per_day=args.signals_per_day, seed=args.seed, top=1)
    recent = store.get_recent_signals_by_entity(entity_ref=person[0], limit=3, end=window_end) if person else []
    read_seconds = time.perf_counter() - t2

    if args.json:
        _print_json(
            {
                "workspace": str(workspace),
                "window": {"start": _iso(window_start), "end": _iso(window_end), "first_day": first.isoformat(),
                           "last_day": last.isoformat()},
                "written": {**written, "days": per_day},
                "compaction": report,
                "top_candidates": [
                    {"signal_id": s.signal_id, "score": s.payload.get("score"), "entity": _entity(s)} for s in top
                ],
                "outcome_buckets": {name: len(items) for name, items in buckets.items()},
                "recent_for_popular_person": [s.signal_id for s in recent],
                "seconds": {
                    "write": round(write_seconds, 3),
                    "compact": round(compact_seconds, 3),
                    "read": round(read_seconds, 3),
                },
            }
        )
        return 0

    say("")
    say(f"reads over the whole window, {_iso(window_start)} .. {_iso(window_end)}:")
    say("top 5 recommendation candidates (source score.worker, payload type RecommendationCandidate, by payload.score):")
    for s in top:
        say(f"  {s.signal_id}  score {float(s.payload.get('score', 0.0)):.4f}  {_entity(s)}")
    say("outcome buckets with now = window end (get_outcome_window_buckets):")
    meaning = {
        "pending": "pending outcome signals no emission resolved yet, not expired",
        "expired": "unresolved, and their payload.expires_at is before now",
        "success": "OutcomeSuccess / DraftApproved emissions",
        "failure": "OutcomeFailure / DraftRejected emissions",
    }
    for name, items in buckets.items():
        say(f"  {name:<8} {len(items):>6,}  {meaning.get(name, '')}")
    if person:
        say(f"latest 3 signals about a popular {_entity_ref(person[0])}: {', '.join(s.signal_id for s in recent)}")
    ws = shlex.quote(str(workspace))
    say("")
    say("next, try:")
    say(f"  metaspn-store info {ws}")
    say(f"  metaspn-store sql {ws} 'SELECT day, tier, count(*) AS signals FROM signals GROUP BY ALL ORDER BY ALL'")  # noqa: S608
    say(
        f"  metaspn-store sql {ws} 'SELECT source, count(*) AS n FROM signals WHERE day = $day GROUP BY ALL "  # noqa: S608
        f"ORDER BY n DESC' --param day={last}"
    )
    say(f"  metaspn-store compact {ws} --before {last + timedelta(days=1)} --dry-run")
    say(f"  METASPN_WORKSPACE={ws} jupyter execute notebooks/analysis.ipynb   # after pip install -e '.[notebooks]'")
    return 0


def _entity_ref(ref: Any) -> str:
    return f"{ref.ref_type} {ref.value}" + (f" ({ref.platform})" if ref.platform else "")


def cmd_compact(args: argparse.Namespace) -> int:
    """Compact closed days into Parquet; safe to run from cron."""
    store = _open_existing(args.workspace, args.cold)
    report = _compact(
        store, before=args.before, dry_run=args.dry_run, wait=not args.no_wait, progress=_progress_wanted(args)
    )
    if args.json:
        _print_json(report)
    else:
        print("\n".join(compaction_summary(report)))
    return 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    """Delete cold data files no table version of the last --retain hours uses."""
    store = _open_existing(args.workspace)
    removed = store.vacuum(retain_hours=args.retain, dry_run=args.dry_run)
    if args.json:
        _print_json({"dry_run": args.dry_run, "retain_hours": args.retain, "files": removed,
                     "count": sum(len(v) for v in removed.values())})
    else:
        verb = "would remove" if args.dry_run else "removed"
        print("; ".join(f"{kind}: {verb} {len(files)} file(s)" for kind, files in removed.items())
              + f" older than every version of the last {args.retain} hours")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """List unreadable lines per hot file; exit 1 when there are any."""
    problems = _open_existing(args.workspace).verify()
    if args.json:
        _print_json({"problems": [p.__dict__ for p in problems], "count": len(problems)})
    else:
        print("\n".join(f"{p.path}:{p.line}: {p.reason}" for p in problems) or "no problems found")
    return 1 if problems else 0


def cmd_consumers(args: argparse.Namespace) -> int:
    """Named consumers: records delivered (committed), lag, last commit, filter."""
    found = _open_existing(args.workspace).consumers()
    if args.json:
        _print_json(found)
        return 0
    if not found:
        print("no consumers (a worker creates one with store.consumer(NAME))")
        return 0
    rows = [["NAME", "KIND", "DELIVERED", "LAG", "LAST COMMIT (UTC)", "FILTER"]]
    for c in found:
        flt = " ".join(f"{k}={','.join(v)}" for k, v in c["filter"].items()) or "-"
        rows.append([c["name"], c["kind"], str(c["delivered"]), str(c["lag"]), c["committed"] or "never", flt])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Per kind: hot and cold days, records, bytes, quarantined lines, last compaction; checkpoints."""
    from metaspn_store._info import STEPS, workspace_info

    store = _open_existing(args.workspace)
    with _bar(_progress_wanted(args), total=STEPS, unit="step", desc="reading") as bar:

        steps_started = 0

        def step(description: str) -> None:
            nonlocal steps_started
            if steps_started:
                bar.update(1)  # the previous step is done
            steps_started += 1
            bar.describe(description)

        info = workspace_info(store, step=step)
        bar.update(1)
    if args.json:
        _print_json(info.to_dict())
        return 0
    rows = [["kind", "tier", "days", "first day", "last day", "records", "bytes"]]
    for name, kind in info.kinds.items():
        for tier_name, tier in (("hot", kind.hot), ("cold", kind.cold)):
            rows.append(
                [
                    name,
                    f"{tier_name} ({'JSONL' if tier_name == 'hot' else 'Parquet'})",
                    str(len(tier.days)),
                    tier.days[0] if tier.days else "-",
                    tier.days[-1] if tier.days else "-",
                    f"{tier.records:,}",
                    _human_bytes(tier.bytes),
                ]
            )
    lines = [f"workspace {info.workspace}", ""]
    lines += _table(rows, right=frozenset({2, 5, 6}))
    lines.append("")
    for name, kind in info.kinds.items():
        lines.append(
            f"{name}: {kind.records:,} records; last compaction {kind.last_compaction or 'never'}; "
            f"{kind.unreadable_hot_lines} unreadable hot lines (see `verify`); "
            f"{kind.quarantined_lines} lines in quarantine"
        )
    if info.checkpoints:
        lines.append("checkpoints (signals stored after each, i.e. what a replay from it yields):")
        width = max(len(c.name) for c in info.checkpoints)
        lines += [
            f"  {c.name:<{width}}  at {c.last_timestamp}  {c.signals_behind:,} signals behind" for c in info.checkpoints
        ]
    else:
        lines.append("checkpoints: none saved (store.write_checkpoint)")
    print("\n".join(lines))
    return 0


def _table(rows: list[list[str]], *, right: frozenset[int] = frozenset()) -> list[str]:
    """Rows of text as aligned columns; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []

    def fmt(row: list[str]) -> str:
        cells = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))]
        return "  ".join(cells).rstrip()

    return [fmt(rows[0]), "  ".join("-" * w for w in widths), *(fmt(row) for row in rows[1:])]


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        return _iso(value.astimezone(timezone.utc)) if value.tzinfo else value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=_text, sort_keys=False)
    return str(value)


def _json_value(value: Any, is_json: bool) -> Any:
    if value is None or isinstance(value, (int, float, bool)):
        return value
    if is_json and isinstance(value, str):
        return json.loads(value)  # a JSON column (payload, trace, raw): nest it, not a string of it
    if isinstance(value, datetime):
        return _text(value)
    if isinstance(value, list):
        return [_json_value(v, False) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v, False) for k, v in value.items()}
    if isinstance(value, (str, date, Decimal)):
        return str(value)
    return str(value)


def cmd_sql(args: argparse.Namespace) -> int:
    """Run read-only SQL over the signals / emissions views and print or save the result."""
    store = _open_existing(args.workspace)
    params = dict(args.param) if args.param else None
    relation = store.sql(args.query, params=params)
    if relation is None:  # a statement without a result
        return 0
    columns = list(relation.columns)
    if args.format == "parquet":
        import pyarrow.parquet as pq

        table = relation.to_arrow_table()
        pq.write_table(table, args.output, compression="zstd")
        print(f"wrote {table.num_rows:,} rows to {args.output}")
        return 0
    out: TextIO
    with _output(args.output) as out:
        rows = 0
        if args.format == "table":
            data = [row for batch in _batches(relation) for row in batch]
            rows = len(data)
            lines = _table([columns, *([_text(v) for v in row] for row in data)])
            out.write("\n".join(lines) + "\n")
            if args.output is None:
                out.write(f"({rows:,} row{'s' if rows != 1 else ''})\n")
        elif args.format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            for batch in _batches(relation):
                rows += len(batch)
                writer.writerows(["" if v is None else _text(v) for v in row] for row in batch)
        else:  # json: an array of objects, one per line
            is_json = [str(t) == "JSON" for t in relation.types]
            out.write("[")
            separator = "\n"
            for batch in _batches(relation):
                for row in batch:
                    record = {name: _json_value(v, j) for name, v, j in zip(columns, row, is_json, strict=True)}
                    out.write(separator + json.dumps(record, ensure_ascii=False, default=str))
                    separator = ",\n"
                rows += len(batch)
            out.write("\n]\n" if rows else "]\n")
    if args.output is not None:
        print(f"wrote {rows:,} rows to {args.output}")
    return 0


def _batches(relation: Any) -> Iterator[list[tuple[Any, ...]]]:
    """The result as lists of row tuples, a bounded Arrow batch at a time."""
    # duckdb >= 1.4 names it to_arrow_reader (and deprecates the old name).
    to_reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    reader = to_reader(_FETCH_ROWS)
    for batch in reader:
        columns = [column.to_pylist() for column in batch.columns]
        yield list(zip(*columns, strict=True))


@contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8", newline="") as handle:
        yield handle


# ---------------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metaspn-store",
        description="Columnar event store for MetaSPN signals and emissions.",
        epilog="Start with: metaspn-store demo demo-workspace",
    )
    parser.add_argument("--version", action="version", version=f"metaspn-store {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="write sample data into a workspace, compact closed days, query it",
        description="Write a few days of sample MetaSPN signals and emissions (from 2026-02-01, UTC), "
        "compact the closed days into Parquet and run the main read models. Running it again "
        "writes nothing new. Example: metaspn-store demo ./demo-workspace --days 3 --signals-per-day 2000",
    )
    demo.add_argument("workspace", nargs="?", default="demo-workspace", help="folder to create or reuse (default: %(default)s)")
    demo.add_argument("--days", type=_at_least(1), default=3, help="UTC days to generate, >= 1 (default: %(default)s)")
    demo.add_argument(
        "--signals-per-day", type=_at_least(1), default=2000, help="signals per day, >= 1 (default: %(default)s)"
    )
    demo.add_argument("--seed", type=int, default=0, help="sample generator seed (default: %(default)s)")
    demo.add_argument("--json", action="store_true", help="print one JSON document")
    demo.set_defaults(func=cmd_demo)

    compact = sub.add_parser(
        "compact",
        help="turn closed days into Parquet (cron-safe, idempotent)",
        description="Move every hot (JSONL) day before --before into the Parquet cold tier. "
        "Example: metaspn-store compact /srv/workspace --json",
    )
    compact.add_argument("workspace", help="workspace folder (the one holding store/)")
    compact.add_argument(
        "--before", type=_day, metavar="YYYY-MM-DD", help="compact days strictly before this day (default: yesterday, UTC)"
    )
    compact.add_argument("--dry-run", action="store_true", help="report what would be compacted, change nothing")
    compact.add_argument("--no-wait", action="store_true", help="exit at once if another compaction is running")
    compact.add_argument("--json", action="store_true", help="print one JSON report (for cron logs)")
    compact.add_argument(
        "--cold", metavar="URI",
        help="set the workspace's cold tier once, e.g. s3://bucket/prefix (remembered in store/cold.json; "
        "credentials come from the AWS_* environment variables)",
    )
    compact.set_defaults(func=cmd_compact)

    vacuum = sub.add_parser(
        "vacuum",
        help="delete cold data files no recent table version uses",
        description="Delete the Delta tables' data files that no version of the last --retain hours "
        "references (files replaced by compactions, files of commits that never landed). "
        "Example: metaspn-store vacuum /srv/workspace --retain 168",
    )
    vacuum.add_argument("workspace", help="workspace folder (the one holding store/)")
    vacuum.add_argument("--retain", type=_at_least(0), default=168, metavar="HOURS",
                        help="keep files a version of the last HOURS still uses (default: %(default)s)")
    vacuum.add_argument("--dry-run", action="store_true", help="list what would be removed, change nothing")
    vacuum.add_argument("--json", action="store_true", help="print one JSON document")
    vacuum.set_defaults(func=cmd_vacuum)

    verify = sub.add_parser(
        "verify",
        help="list lines of the hot tier that are not readable records",
        description="Example: metaspn-store verify /srv/workspace",
    )
    verify.add_argument("workspace", help="workspace folder (the one holding store/)")
    verify.add_argument("--json", action="store_true", help="print one JSON document")
    verify.set_defaults(func=cmd_verify)

    info = sub.add_parser(
        "info",
        help="what a workspace holds: days, records and bytes per tier, compaction, checkpoints",
        description="Example: metaspn-store info /srv/workspace --json",
    )
    info.add_argument("workspace", help="workspace folder (the one holding store/)")
    info.add_argument("--json", action="store_true", help="print one JSON document")
    info.set_defaults(func=cmd_info)

    consumers = sub.add_parser(
        "consumers",
        help="list named consumers with their lag (records stored, not yet delivered) and last commit",
        description="Example: metaspn-store consumers /srv/workspace --json",
    )
    consumers.add_argument("workspace", help="workspace folder (the one holding store/)")
    consumers.add_argument("--json", action="store_true", help="print one JSON document")
    consumers.set_defaults(func=cmd_consumers)

    sql = sub.add_parser(
        "sql",
        help="run DuckDB SQL over the signals and emissions views (both tiers)",
        description="Run DuckDB SQL over the views `signals` and `emissions` (hot and cold tiers, first "
        "write per id; columns in the README's Analysis section). Values go in as parameters. "
        "Example: metaspn-store sql demo-workspace "
        "'SELECT source, count(*) AS n FROM signals WHERE day = $day GROUP BY ALL ORDER BY n DESC' "
        "--param day=2026-02-03",
    )
    sql.add_argument("workspace", help="workspace folder (the one holding store/)")
    sql.add_argument("query", help="the SQL text; refer to parameters as $NAME")
    sql.add_argument(
        "--param",
        "-p",
        type=_param,
        action="append",
        metavar="NAME=VALUE",
        help="a parameter, passed as text (DuckDB casts it where compared to a typed column); repeatable",
    )
    sql.add_argument("--format", "-f", choices=("table", "csv", "json", "parquet"), default="table", help="output format (default: %(default)s)")
    sql.add_argument("--output", "-o", metavar="FILE", help="write the result to FILE (required for parquet)")
    sql.set_defaults(func=cmd_sql, subparser=sql)
    return parser


def _warning_printer(command: str) -> Callable[..., None]:
    def show(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
        print(f"metaspn-store {command}: warning: {message}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "format", None) == "parquet" and not args.output:
        args.subparser.error("--format parquet writes a binary file: give --output FILE")
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_printer(args.command)
            return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (CommandError, StoreError, ValueError, OSError) as exc:
        print(f"metaspn-store {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"metaspn-store {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
