"""Masking of personal data before a case is stored, indexed or logged.

What is masked: mobile and landline numbers, 18-digit resident ID numbers
(GB 11643-1999, checksum per ISO 7064 MOD 11-2), bank card numbers (Luhn),
licence plates, e-mail addresses, and names introduced by 我叫/我姓 and the
like. Phone calls dictate numbers, so digits written as Chinese numerals
(幺三八…) and full-width digits are read as digits too.

The rule for long digit runs is deliberately greedy: a run of eleven or more
digits that is not a recognised number but *contains* a mobile or ID number is
masked whole. A missed mask is a privacy incident; an over-masked order number
is an inconvenience.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

# One character in, one character out: positions in the digit view equal
# positions in the original text.
_DIGIT_VIEW = str.maketrans("零〇一二三四五六七八九幺两０１２３４５６７８９Ｘｘx", "0012345678912" "0123456789" "XXX")

_DIGITS = frozenset("0123456789")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

_MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_MOBILE_SEPARATED = re.compile(r"(?<!\d)1[3-9]\d[- ]\d{4}[- ]\d{4}(?!\d)", re.ASCII)
_LANDLINE = re.compile(r"(?<!\d)0[1-9]\d{1,2}[- —]?[2-9]\d{6,7}(?!\d)", re.ASCII)
_DIGIT_RUN = re.compile(r"\d+X?", re.ASCII)
_PHONE_CONTEXT = re.compile(r"(电话|座机|号码|手机|联系|打|拨)[^\d]{0,6}$")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Za-z][·•\s]?[A-Za-z0-9]{5,6}(?![A-Za-z0-9])"
)
_NAME_AFTER = re.compile(r"(我叫|我的名字叫|我名字叫|名字是|本人叫|姓名是|姓名叫|联系人是|联系人)\s*([\u4e00-\u9fff]{1,4})")
_SURNAME_AFTER = re.compile(r"(我姓|免贵姓|本人姓)\s*([\u4e00-\u9fff]{1,2})")
_TITLE_AFTER_SURNAME = re.compile(r"([\u4e00-\u9fff])(先生|女士|小姐|师傅|阿姨|老师)")
# Characters that end a name: verbs, particles and place words that follow one in speech.
_NAME_STOP = set("是在住的家今想要从来打现我你他她反就呢啊嗯吧哈了呀吗，。,.！？!? 电号身")
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙")
_COMMON_SURNAMES = set(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A piece of personal data found in a text: ``text[start:end]`` is of ``kind``."""

    kind: str
    start: int
    end: int


def id_checksum_ok(number: str) -> bool:
    """True when an 18-character ID number carries a valid ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not _DIGITS.issuperset(number[:17]):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def _id_date_ok(number: str) -> bool:
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


def looks_like_id(number: str) -> bool:
    """A valid checksum, or a valid birth date in place (a mistyped ID is still personal data)."""
    if len(number) != 18 or not _DIGITS.issuperset(number[:17]) or number[17] not in "0123456789X":
        return False
    return id_checksum_ok(number) or (number[0] != "0" and _id_date_ok(number))


def luhn_ok(number: str) -> bool:
    """Luhn check used by bank card numbers (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _contains_id(run: str) -> bool:
    return any(id_checksum_ok(run[i : i + 18]) for i in range(len(run) - 17))


def _classify_run(run: str, before: str) -> str | None:
    n = len(run)
    if run.endswith("X"):
        if n == 18 and looks_like_id(run):
            return "id"
        return _classify_run(run[:-1], before) or ("number" if _contains_id(run) else None)
    if n == 18 and looks_like_id(run):
        return "id"
    if 16 <= n <= 19 and run[0] != "0" and luhn_ok(run):
        return "bank_card"
    if n == 11 and _MOBILE.fullmatch(run):
        return "mobile"
    if 10 <= n <= 12 and run[0] == "0" and run[1] != "0":
        return "landline"
    if n >= 11 and (_MOBILE.search(run) or _contains_id(run)):
        return "number"
    if 7 <= n <= 8 and run[0] not in "01" and _PHONE_CONTEXT.search(before):
        return "landline"
    return None


def _name_length(candidate: str) -> int:
    size = 2 if candidate.startswith(_COMPOUND_SURNAMES) else 1
    limit = size + 2
    while size < min(len(candidate), limit) and candidate[size] not in _NAME_STOP:
        size += 1
    return size


def find(text: str) -> list[PiiSpan]:
    """Every piece of personal data in ``text``, non-overlapping, in order."""
    view = text.translate(_DIGIT_VIEW)
    spans: list[PiiSpan] = []
    for match in _EMAIL.finditer(text):
        spans.append(PiiSpan("email", match.start(), match.end()))
    for match in _MOBILE_SEPARATED.finditer(view):
        spans.append(PiiSpan("mobile", match.start(), match.end()))
    for match in _LANDLINE.finditer(view):
        spans.append(PiiSpan("landline", match.start(), match.end()))
    for match in _DIGIT_RUN.finditer(view):
        kind = _classify_run(match.group(), view[max(0, match.start() - 10) : match.start()])
        if kind:
            spans.append(PiiSpan(kind, match.start(), match.end()))
    for match in _PLATE.finditer(text):
        spans.append(PiiSpan("plate", match.start() + 2, match.end()))
    for match in _NAME_AFTER.finditer(text):
        start = match.start(2)
        if text[start] not in _NAME_STOP:
            spans.append(PiiSpan("name", start, start + _name_length(match.group(2))))
    for match in _SURNAME_AFTER.finditer(text):
        start = match.start(2)
        size = 2 if match.group(2) in _COMPOUND_SURNAMES else 1
        spans.append(PiiSpan("name", start, start + size))
    for match in _TITLE_AFTER_SURNAME.finditer(text):
        if match.group(1) in _COMMON_SURNAMES:
            spans.append(PiiSpan("name", match.start(1), match.end(1)))
    return _non_overlapping(spans)


def _non_overlapping(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Merge overlapping spans so a masked region is never partly revealed."""
    merged: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = PiiSpan(last.kind, last.start, max(last.end, span.end))
        else:
            merged.append(span)
    return merged


def _masked(kind: str, value: str) -> str:
    if kind == "mobile" and len(value) == 11:
        return value[:3] + "****" + value[-4:]
    if kind == "id":
        return value[:6] + "*" * 8 + value[-4:]
    if kind == "bank_card":
        return "*" * (len(value) - 4) + value[-4:]
    if kind == "email":
        return "***" + value[value.index("@") :]
    return "*" * len(value)


def mask(text: str) -> str:
    """``text`` with every span of :func:`find` masked; the rest is unchanged."""
    return "".join(_pieces(text, find(text)))


def _pieces(text: str, spans: list[PiiSpan]) -> Iterator[str]:
    pos = 0
    for span in spans:
        yield text[pos : span.start]
        yield _masked(span.kind, text[span.start : span.end])
        pos = span.end
    yield text[pos:]
