from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hotline.case import Area, Category, Channel, LabelKind
from hotline.demo.generator import write_csv
from hotline.errors import InvalidInput
from hotline.ingest import CaseBuilder, ColumnMap, ingest, parse_time
from hotline.store import CaseQuery
from hotline.store.sqlite import SQLiteStore


def _id() -> str:
    body = "32120219900307123"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=False)) % 11]


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_generated_file_ingests_without_column_flags(tmp_path: Path, demo: tuple, store: SQLiteStore, builder: CaseBuilder) -> None:
    rows = demo[0][:300]
    path = tmp_path / "calls.csv"
    write_csv(rows, path)
    report = ingest(path, store, builder)
    assert (report.read, report.accepted, report.rejected, report.inserted) == (300, 300, 0, 300)
    first = store.get(rows[0]["id"])
    assert first.category and first.category.l2 == rows[0]["category_l2"]
    assert first.category_source.kind is LabelKind.IMPORTED
    assert first.area.district == rows[0]["district"] or not rows[0]["district"]
    assert first.caller.count("*") == 4
    again = ingest(path, store, builder)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 300)


def test_personal_data_is_masked_before_it_is_stored(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    transcript = f"坐席：您好\n市民：我叫王小明，电话13812345678，身份证{_id()}，我家楼下停水了"
    path = write(tmp_path / "c.csv", ["id", "received_at", "transcript", "caller_phone"],
                 [["A1", "2025-07-01 09:00:00", transcript, "13812345678"]])
    ingest(path, store, builder)
    stored = store.get("A1")
    everything = json.dumps([stored.text, stored.transcript, stored.caller], ensure_ascii=False)
    assert "13812345678" not in everything and _id() not in everything and "王小明" not in everything
    assert "停水" in stored.text and "坐席" not in stored.text


def test_bad_rows_go_to_the_reject_file_and_good_rows_are_all_kept(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    rows = [
        ["1", "2025-07-01 09:00", "路灯不亮了"],
        ["2", "2025-07-01 09:00", ""],
        ["3", "昨天下午", "井盖没了"],
        ["4", "2025/7/2 10:11:12", "噪音太大" * 1000],
        ["5", "2025-07-03", "垃圾没人清，电话13812345678"],
        ["6", "2025-07-04", "坐席：您好，请讲"],
    ]
    path = write(tmp_path / "in.csv", ["id", "time", "text"], rows)
    rejects = tmp_path / "rejects.csv"
    report = ingest(path, store, builder, rejects_path=rejects)
    assert (report.read, report.accepted, report.rejected) == (6, 3, 3)
    assert sorted(c.id for c in store.search(CaseQuery()).items) == ["1", "5", "6"]
    found = {r["row"]: r["reason"] for r in read_rejects(rejects)}
    assert set(found) == {"3", "4", "5"}
    assert found["3"].startswith("no text")
    assert found["4"].startswith("bad date")
    assert found["5"].startswith("oversize")
    assert "13812345678" not in rejects.read_text(encoding="utf-8-sig")


def test_transcript_with_only_the_agent_is_rejected(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    path = write(tmp_path / "t.csv", ["id", "received_at", "transcript"], [["1", "2025-07-01", "坐席：您好，请讲"]])
    report = ingest(path, store, builder, rejects_path=tmp_path / "r.csv")
    assert report.rejected == 1
    assert read_rejects(tmp_path / "r.csv")[0]["reason"] == "no caller text in the transcript"


def test_gb18030_files_and_broken_bytes(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    path = write(tmp_path / "gb.csv", ["编号", "留言时间", "留言详情"], [["G1", "2025-07-01 08:00:00", "姜堰区溱潼镇有人烧秸秆"]], encoding="gb18030")
    report = ingest(path, store, builder)
    assert report.encoding == "gb18030" and report.accepted == 1
    assert store.get("G1").area == Area("姜堰区", "溱潼镇")

    broken = tmp_path / "broken.csv"
    broken.write_bytes("id,time,text\nB1,2025-07-01,路灯不亮\nB2,2025-07-01,井盖".encode() + b"\xff\xfe" + "没了\n".encode())
    report = ingest(broken, store, builder, rejects_path=tmp_path / "r.csv")
    assert (report.accepted, report.rejected) == (1, 1)
    assert "wrong encoding" in read_rejects(tmp_path / "r.csv")[0]["reason"]


def test_jsonl_and_xlsx(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    lines = [json.dumps({"id": "J1", "time": "2025-07-01T08:00:00", "text": "小区电梯坏了", "channel": "微信"}, ensure_ascii=False),
             "{not json", json.dumps([1, 2])]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest(tmp_path / "c.jsonl", store, builder, rejects_path=tmp_path / "r.csv")
    assert (report.accepted, report.rejected) == (1, 2)
    assert store.get("J1").channel is Channel.WECHAT

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["工单编号", "受理时间", "诉求内容", "二级分类", "承办单位"])
    sheet.append(["X1", datetime(2025, 7, 5, 14, 30), "楼上装修太吵", "噪声污染", "泰州市生态环境局；城管"])
    sheet.append([None, None, None, None, None])
    book.save(tmp_path / "c.xlsx")
    report = ingest(tmp_path / "c.xlsx", store, builder)
    case = store.get("X1")
    assert report.accepted == 1 and case.received_at == datetime(2025, 7, 5, 14, 30)
    assert case.category == Category("环境保护", "噪声污染")
    assert case.departments == ("生态环境局", "城管局")


def test_column_flags_map_other_names(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    path = write(tmp_path / "m.csv", ["when", "what", "kind"], [["2025-07-01", "燃气泄漏了", "燃气"]])
    report = ingest(path, store, builder, ColumnMap(time="when", text="what", category="kind"))
    assert report.accepted == 1
    case = store.search(CaseQuery()).items[0]
    assert case.category == Category("城乡建设", "燃气") and case.id.startswith("H")
    again = ingest(path, store, builder, ColumnMap(time="when", text="what", category="kind"))
    assert again.inserted == 0


def test_missing_columns_are_clear_errors(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    path = write(tmp_path / "x.csv", ["a", "b"], [["1", "2"]])
    with pytest.raises(InvalidInput, match="no text column"):
        ingest(path, store, builder)
    with pytest.raises(InvalidInput, match="'nope'"):
        ingest(path, store, builder, ColumnMap(text="nope"))
    with pytest.raises(InvalidInput, match="no such file"):
        ingest(tmp_path / "missing.csv", store, builder)
    with pytest.raises(InvalidInput, match="cannot import"):
        ingest(_touch(tmp_path / "x.pdf"), store, builder)


def _touch(path: Path) -> Path:
    path.write_bytes(b"%PDF")
    return path


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2019/2/28 11:25:05", datetime(2019, 2, 28, 11, 25, 5)), ("2025-07-01T08:00:00Z", datetime(2025, 7, 1, 16)), ("2025-07-01T08:00:00+08:00", datetime(2025, 7, 1, 8)),
     ("2025-07-01 08:00:00.123", datetime(2025, 7, 1, 8)), ("2025年7月1日", datetime(2025, 7, 1)),
     ("20250701", datetime(2025, 7, 1))],
)
def test_time_formats(raw: Any, expected: datetime) -> None:
    assert parse_time(raw) == expected


def test_files_without_time_get_the_import_time_and_still_dedupe(tmp_path: Path, store: SQLiteStore, builder: CaseBuilder) -> None:
    path = write(tmp_path / "labeled.csv", ["text", "label"], [["公交车太少", "交通运输"], ["公交车太少", "交通运输"]])
    report = ingest(path, store, builder)
    assert report.accepted == 2 and report.inserted == 1
    values, columns = {"text": "公交车太少"}, {"text": "text"}
    later = builder.build(values, columns, now=datetime(2030, 1, 1))
    assert later.id == builder.build(values, columns, now=datetime(2031, 1, 1)).id
