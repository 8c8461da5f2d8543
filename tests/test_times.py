"""Times of cases: any accepted value round-trips, implausible ones are refused with the reason, offsets converted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hotline.case import Case
from hotline.errors import Implausible
from hotline.ingest import ColumnMap, ingest
from hotline.times import TimeWindow, format_time, parse_time

NOW = datetime(2026, 11, 29, 12, 0)


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
def test_every_time_round_trips_through_the_stored_format(moment: datetime) -> None:
    moment = moment.replace(microsecond=0)
    assert parse_time(format_time(moment)) == moment


def test_years_under_1000_are_padded_and_old_unpadded_rows_still_read() -> None:
    assert format_time(datetime(1, 1, 1)) == "0001-01-01 00:00:00"
    assert parse_time("1-01-01 00:00:00") == datetime(1, 1, 1)


def test_the_window_refuses_the_ancient_and_the_future_with_the_reason() -> None:
    window = TimeWindow(earliest=date(2000, 1, 1))
    with pytest.raises(Implausible, match="before the earliest accepted day 2000-01-01"):
        window.check(datetime(1, 1, 1), now=NOW)
    with pytest.raises(Implausible, match="in the future"):
        window.check(datetime(2040, 1, 1), now=NOW)
    assert window.check(NOW + timedelta(hours=20), now=NOW) == NOW + timedelta(hours=20)
    assert window.check(datetime(2000, 1, 1), now=NOW) == datetime(2000, 1, 1)


def test_offsets_are_converted_into_the_city_zone() -> None:
    window = TimeWindow()
    assert window.check(datetime(2025, 7, 1, 8, tzinfo=UTC), now=NOW) == datetime(2025, 7, 1, 16)
    assert window.check(datetime(2025, 7, 1, 8, tzinfo=ZoneInfo("Asia/Shanghai")), now=NOW) == datetime(2025, 7, 1, 8)
    assert window.check(datetime(2025, 7, 1, 8), now=NOW) == datetime(2025, 7, 1, 8)


def test_a_case_dated_year_1_round_trips_through_the_store(store) -> None:
    """Older versions stored it unpadded and every read of it failed; a store may still hold such a row."""
    store.upsert([Case(id="OLD-1", received_at=datetime(1, 1, 1), text="很久以前的留言")])
    assert store.get("OLD-1").received_at == datetime(1, 1, 1)
    assert store.summary().first == datetime(1, 1, 1)


def test_import_sends_implausible_times_to_the_reject_file(tmp_path: Path, store, builder) -> None:
    path = tmp_path / "calls.csv"
    path.write_text("id,received_at,text\n"
                    "A,0001-01-01 00:00:00,路灯不亮\n"
                    "B,2040-01-01 00:00:00,路灯不亮了\n"
                    "C,1999-12-31 23:59:59,路灯坏了\n"
                    "D,2025-06-01T00:30:00Z,楼道灯坏了\n", encoding="utf-8")
    report = ingest(path, store, builder, ColumnMap(), tmp_path / "rejects.csv")
    assert (report.accepted, report.rejected) == (1, 3)
    rejects = (tmp_path / "rejects.csv").read_text(encoding="utf-8-sig")
    assert "before the earliest accepted day 2000-01-01" in rejects and "in the future" in rejects
    assert store.get("D").received_at == datetime(2025, 6, 1, 8, 30)
