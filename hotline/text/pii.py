"""Masking of personal data before a case is stored, indexed or logged.

What is masked: mobile and landline numbers, 18- and 15-digit resident ID
numbers (GB 11643-1999, checksum per ISO 7064 MOD 11-2, or a birth date in
place), bank card numbers (Luhn), licence plates, e-mail addresses, and names
introduced by 我叫 / 我是 / 姓名： / 本人 / 叫我 / 我姓X叫XX or followed by
先生 / 女士 / 师傅.

Callers dictate numbers, and transcripts and web forms write them in every
shape: ``139 1234 5678``, ``139—1234—5678``, ``1.3.9.1.2…``, ``壹叁玖…``,
``幺三九，一二三四，五六七八``, or split across turns of the dialogue
(``市民：139 坐席：嗯 市民：1234 5678``). So the search runs on a normalised
*view* of the text: NFKC, invisible characters (zero-width, bidi controls)
and every kind of space removed, every Unicode digit and Chinese numeral
(壹贰叁 and the radio alphabet 幺洞两拐勾 included) read as a digit. A number
is a run of digit groups joined by short separators (dashes of any width,
dots, commas, slashes, underscores, brackets, a filler word, or a turn of the
dialogue); the run is judged on its digits alone. Each span found in the view
maps back onto the original characters, and only the digits (or the name's
characters) are replaced there, so agents still read the text as it was said.

The rule for long digit runs is deliberately greedy: a run of eleven or more
digits that is not a recognised number but *contains* a mobile or ID number is
masked whole, unless the words before it name an order, a waybill or an
invoice. A missed mask is a privacy incident; an over-masked order number is
an inconvenience, and the false positives are measured in the tests.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

#: Chinese numerals (plain, financial 大写, and the radio alphabet) read as digits.
_NUMERALS = {
    **dict.fromkeys("零〇洞", "0"), **dict.fromkeys("一壹幺", "1"), **dict.fromkeys("二贰两", "2"),
    **dict.fromkeys("三叁", "3"), **dict.fromkeys("四肆", "4"), **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆", "6"), **dict.fromkeys("七柒拐", "7"), **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖勾", "9"),
}
_DIGITS = frozenset("0123456789")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# What may stand between two digit groups of one number in the view (spaces are already gone). Strong
# separators always join groups (139-1234-5678, a turn of the dialogue); weak ones are also how lists are
# written (1-1-1101、1-1-2001; 1-23-1-602/1-23-1-202; 78.16、79.00; 07、08、09), so they join groups only after words that
# announce a number (电话, 身份证, 卡号 …).
_STRONG_SEP = r"\-‐‑‒–—―−﹣－_·・()（）\[\]"
_WEAK_SEP = r".,，、。…/\\"
_FILLER = r"(?:嗯|呃|额|啊|呀|哦|然后|是|再|最后|后面)"
_TURN_LABEL = r"(?:坐席|客服|话务员|接线员|工作人员|市民|来电人|来电者|用户|群众|说话人\d?|[AB甲乙])[:：]"
#: A turn of the dialogue between digit groups: the other side's short, digit-free reply and the caller again.
_D = "0-9" + "".join(_NUMERALS)  # a digit in the view: ASCII (every other script is folded) or a numeral
_TURN = rf"{_TURN_LABEL}[^{_D}]{{0,8}}?{_TURN_LABEL}"
_GAP_STRONG = rf"(?:[{_STRONG_SEP}]|{_TURN})"
_GAP_ANY = rf"(?:[{_STRONG_SEP}{_WEAK_SEP}]|{_FILLER}|{_TURN})"
_NUMBER_STRONG = re.compile(rf"[{_D}]+(?:{_GAP_STRONG}{{1,8}}[{_D}]+)*(?:{_GAP_STRONG}{{0,8}}X)?")
_NUMBER_ANY = re.compile(rf"[{_D}]+(?:{_GAP_ANY}{{1,8}}[{_D}]+)*(?:{_GAP_ANY}{{0,8}}X)?")
_NUMBER_CONTEXT = re.compile(
    rf"(电话|座机|号码|手机|联系|打|拨|致电|身份证|证件|证号|卡号|银行卡|卡是|账号|帐号|工资卡|社保卡)[^{_D}]{{0,6}}$"
)
_DIGIT_RUN = re.compile(rf"[{_D}]+$")
_GROUP = re.compile(rf"[{_D}]+X?")

_MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_PHONE_CONTEXT = re.compile(r"(电话|座机|号码|手机|联系|打|拨|致电|热线)[^\d]{0,6}$")
_NOT_PERSONAL_CONTEXT = re.compile(
    r"(订单|单号|运单|快递|物流|发票|流水|交易|合同|工单|编号|批次|型号|序列号|条码|户号|户编号|账单|票号)[^\d]{0,6}$"
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Za-z][·•]?[A-Za-z0-9]{5,6}(?![A-Za-z0-9])"
)
_HAN = "\u4e00-\u9fff"
# Where a name surely follows (any characters may form it).
_NAME_AFTER = re.compile(
    rf"(我叫|我的名字叫|我名字叫|名字是|名字叫|本人叫|本人姓名|姓名是|姓名叫|姓名[:：]|联系人是|联系人[:：]?)([{_HAN}]{{1,4}})"
)
# Where a name may follow (我是业主, 本人在海陵区住): only a surname and a short given name before a boundary.
_NAME_MAYBE = re.compile(rf"(我是|本人|叫我)([{_HAN}]{{1,4}})")
_SURNAME_AFTER = re.compile(rf"(我姓|免贵姓|本人姓)([{_HAN}]{{1,2}})")
_GIVEN_AFTER_SURNAME = re.compile(rf"^[,，、]?(?:名|叫|单名|全名|名字叫)([{_HAN}]{{1,3}})")
_TITLE = re.compile(r"(先生|女士|小姐|师傅|阿姨|老师)")
_FULL_NAME_TITLES = frozenset({"先生", "女士", "小姐", "师傅"})
#: Characters after which a full name may start (物业张伟先生, 找李明师傅).
#: Surnames that after 我是/本人 are nearly always a word (于 on, 曾 once, 向 towards …).
_FUNCTION_SURNAMES = frozenset("于曾向将和万龙能因全")
_NOT_SURNAME_BIGRAMS = frozenset({"主任", "责任", "担任", "信任", "前任", "现任", "新任", "上任", "继任", "历任",
                                  "数学", "文学", "化学", "大学", "中学", "小学", "同学", "补习", "英语", "语文"})
_BEFORE_NAME = set("是的找给和跟与请问叫位员业：:，。,.！？!? ")
# Characters that end a name: verbs, particles and place words that follow one in speech.
_NAME_STOP = set("是在住的家今想要从来打现我你他她反就呢啊嗯吧哈了呀吗，。,.！？!?、；;：:电号身手联")
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙")
_COMMON_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
#: Words after 我是 / 本人 that start like a name but are roles (我是周边居民, 我是高中生).
_ROLE_WORDS = (
    "居民", "业主", "市民", "住户", "租户", "学生", "高中", "初中", "小学", "大学", "家长", "老人", "司机", "车主",
    "商户", "村民", "党员", "老师", "教师", "工人", "周边", "附近", "房东", "租客", "职工", "员工", "退休", "外地",
    "本地", "本市", "本人", "江苏", "泰州", "海陵", "高港", "姜堰", "兴化", "靖江", "泰兴", "医药", "一名", "一位",
    "一个", "王府", "黄桥", "金融", "方便", "马上", "江边", "高速", "钱款", "孔子", "万达", "严重", "石油", "白马",
    "陈述", "高温", "余额", "程序", "何时", "何处", "高级", "白天", "黄金", "龙头",
)


@dataclass(frozen=True, slots=True)
class PiiSpan:
    """A piece of personal data found in a text: ``text[start:end]`` is of ``kind``."""

    kind: str
    start: int
    end: int


# ---------------------------------------------------------------- checks
def id_checksum_ok(number: str) -> bool:
    """True when an 18-character ID number carries a valid ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not _DIGITS.issuperset(number[:17]):
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def _date_ok(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return 1900 <= born.year <= 2100


def looks_like_id(number: str) -> bool:
    """An 18-digit number with a valid checksum or a birth date in place, or a 15-digit one (before 1999) with its date.

    A mistyped ID is still personal data, so a valid birth date is enough.
    """
    if len(number) == 15 and _DIGITS.issuperset(number):
        return number[0] in "12345678" and _date_ok(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
    if len(number) != 18 or not _DIGITS.issuperset(number[:17]) or number[17] not in "0123456789X":
        return False
    return id_checksum_ok(number) or (number[0] in "12345678" and
                                      _date_ok(int(number[6:10]), int(number[10:12]), int(number[12:14])))


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


def _classify(run: str, before: str) -> str | None:
    """The kind of personal number ``run`` (digits only, maybe a final X) is, given the words before it."""
    n = len(run)
    if run.endswith("X"):
        if n == 18 and looks_like_id(run):
            return "id"
        return _classify(run[:-1], before) or ("number" if _contains_id(run) else None)
    if n in (15, 18) and looks_like_id(run) and not _NOT_PERSONAL_CONTEXT.search(before):
        return "id"
    if 16 <= n <= 19 and run[0] in "345689" and luhn_ok(run) and not _NOT_PERSONAL_CONTEXT.search(before):
        return "bank_card"
    if n == 11 and _MOBILE.fullmatch(run):
        return "mobile"
    if n == 13 and run.startswith("86") and _MOBILE.fullmatch(run[2:]):
        return "mobile"
    if 10 <= n <= 12 and run[0] == "0" and run[1] != "0":
        return "landline"
    if n >= 11 and (_MOBILE.search(run) or _contains_id(run)) and not _NOT_PERSONAL_CONTEXT.search(before):
        return "number"
    if 7 <= n <= 8 and run[0] not in "01" and _PHONE_CONTEXT.search(before):
        return "landline"
    return None


# ---------------------------------------------------------------- the normalised view
@lru_cache(maxsize=8192)
def _view_of(ch: str) -> str:
    """What one character becomes in the view: '' for invisibles and spaces, else its NFKC form, digits as ASCII."""
    category = unicodedata.category(ch)
    if category in ("Cf", "Zs", "Zl", "Zp", "Cc") or ch.isspace():
        return ""
    if category == "Nd":
        return str(unicodedata.decimal(ch))
    folded = unicodedata.normalize("NFKC", ch)
    if folded == "x":
        return "X"
    return "".join(str(unicodedata.decimal(c)) if unicodedata.category(c) == "Nd" else c for c in folded)


@dataclass(frozen=True, slots=True)
class View:
    """The normalised text and, for each of its characters, the index of the original character it came from.

    Numbers are looked for with Chinese numerals as digits (:attr:`digits`),
    names in the text as it is (张三 and 李四 hold numerals).
    """

    text: str
    origin: Sequence[int]

    @property
    def digits(self) -> str:
        """The view with every numeral as an ASCII digit."""
        return self.text.translate(_NUMERAL_DIGITS)

    def span(self, kind: str, start: int, end: int) -> PiiSpan:
        return PiiSpan(kind, self.origin[start], self.origin[end - 1] + 1)


_NUMERAL_DIGITS = str.maketrans(_NUMERALS)
_DIGIT_MARK = re.compile(r"[\dX]+", re.ASCII)


#: Characters the view keeps as they are: Han, ASCII letters and digits but x, and common punctuation.
_PLAIN = "\u4e00-\u9fffA-Za-wyz0-9，。、；：？！“”‘’（）《》【】,.;:?!'\"()\\-"
_UNUSUAL = re.compile(f"[^{_PLAIN}]")


class _Folding(dict):  # type: ignore[type-arg]
    """``str.translate`` table from a character to its view, filled on first sight (bounded).

    Characters whose view is not exactly one character (spaces and
    invisibles vanish, ``⑴`` becomes three) are noted, so that a text without
    any of them keeps its positions.
    """

    irregular: set[str] = set()
    LIMIT = 65_536

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = ch if not _UNUSUAL.match(ch) else _view_of(ch)
        if len(value) != 1:
            self.irregular.add(ch)
        if len(self) < self.LIMIT:
            self[code] = value
        return value


_FOLDING = _Folding()


def view(text: str) -> View:
    """The normalised copy that masking searches (see the module's docstring)."""
    if not _UNUSUAL.search(text):  # most texts: Han, ASCII and common punctuation only
        return View(text, range(len(text)))
    normalised = text.translate(_FOLDING)
    if _FOLDING.irregular.isdisjoint(text):
        return View(normalised, range(len(text)))
    positions: list[int] = []
    for i, ch in enumerate(text):
        positions.extend([i] * len(_FOLDING[ord(ch)]))
    return View(normalised, positions)


# ---------------------------------------------------------------- finding
def _name_length(candidate: str) -> int:
    size = 2 if candidate.startswith(_COMPOUND_SURNAMES) else 1
    limit = size + 2
    while size < min(len(candidate), limit) and candidate[size] not in _NAME_STOP:
        size += 1
    return size


def _likely_name(candidate: str, after: str) -> int:
    """The length of the name at the start of ``candidate`` (after 我是/本人), or 0 when it is not one.

    Only a common surname with a one- or two-character given name that a
    boundary follows, and not a role word: 我是张伟， / 我是李明的家属, but
    not 我是周边居民 or 我是高中生.
    """
    if candidate.startswith(_ROLE_WORDS):
        return 0
    if candidate[0] in "小老" and candidate[1:2] in _COMMON_SURNAMES:  # 叫我小王
        following = (candidate + after)[2:3]
        return 2 if not following or following in _NAME_STOP or not "\u4e00" <= following <= "\u9fff" else 0
    surname = 2 if candidate.startswith(_COMPOUND_SURNAMES) else 1
    if surname == 1 and candidate[0] not in _COMMON_SURNAMES:
        return 0
    if candidate[0] in _FUNCTION_SURNAMES:  # 本人于2012年, 本人曾致电
        return 0
    rest = candidate + after
    for size in (surname + 2, surname + 1):
        given = rest[surname:size]
        if size > len(rest) or any(c in _NAME_STOP or not "\u4e00" <= c <= "\u9fff" for c in given):
            continue
        following = rest[size : size + 1]
        if not following or following in _NAME_STOP or not ("\u4e00" <= following <= "\u9fff"):
            return size
    return 0


def _names(text: str) -> Iterator[tuple[int, int]]:
    for match in _NAME_AFTER.finditer(text):
        start = match.start(2)
        if text[start] not in _NAME_STOP:
            yield start, start + _name_length(match.group(2))
    for match in _NAME_MAYBE.finditer(text):
        size = _likely_name(match.group(2), text[match.end(2) : match.end(2) + 2])
        if size:
            yield match.start(2), match.start(2) + size
    for match in _SURNAME_AFTER.finditer(text):
        start = match.start(2)
        size = 2 if match.group(2) in _COMPOUND_SURNAMES else 1
        yield start, start + size
        given = _GIVEN_AFTER_SURNAME.match(text[start + size : start + size + 8])
        if given:  # 我姓王叫王小明, 我姓张，名伟
            g_start = start + size + given.start(1)
            length = next((i for i, c in enumerate(given.group(1)) if c in _NAME_STOP), len(given.group(1)))
            if length:
                yield g_start, g_start + length
    for match in _TITLE.finditer(text):
        # 王先生, 张伟先生, 欧阳娜娜女士: a surname one to three characters before the title
        # (a full name only before 先生/女士/小姐/师傅: 高中老师 is no name).
        for back in ((4, 3, 2, 1) if match.group() in _FULL_NAME_TITLES else (1,)):
            start = match.start() - back
            if start < 0:
                continue
            head = text[start : match.start()]
            if text[max(0, start - 1) : start + 1] in _NOT_SURNAME_BIGRAMS:  # 班主任老师
                continue
            if back == 4 and not head.startswith(_COMPOUND_SURNAMES):
                continue
            if (head[0] in _COMMON_SURNAMES or head.startswith(_COMPOUND_SURNAMES)) and all(
                "\u4e00" <= c <= "\u9fff" and c not in _NAME_STOP for c in head
            ) and (back == 1 or not text[start - 1 : start] or text[start - 1] in _BEFORE_NAME
                   or not "\u4e00" <= text[start - 1] <= "\u9fff"):
                yield start, match.start()
                break


_TURN_IN = re.compile(_TURN)
_DATE = re.compile(r"(?:19|20)\d\d[-./](?:0?[1-9]|1[0-2])[-./](?:0?[1-9]|[12]\d|3[01])")


def _numbers(v: View, run: str, offset: int) -> Iterator[PiiSpan]:
    """The personal numbers in one run of digit groups starting at ``offset`` of the view."""
    if _DATE.fullmatch(run):  # 号码为2019-6-12: a date after a word that announces a number
        return
    before = v.text[max(0, offset - 12) : offset].translate(_NUMERAL_DIGITS)
    # Digits only (a turn of the dialogue between groups may hold letters), and the ID's final X.
    digits = re.sub(r"\D", "", run.translate(_NUMERAL_DIGITS), flags=re.ASCII) + ("X" if run.endswith("X") else "")
    kind = _classify(digits, before)
    if kind:
        yield v.span(kind, offset, offset + len(run))
    elif len(digits) > 11 and not _GROUP.fullmatch(run):
        # A joined run may be two numbers side by side (a date, then a mobile): judge each group too.
        for group in _GROUP.finditer(run):
            yield from _numbers(v, group.group(), offset + group.start())


def find(text: str) -> list[PiiSpan]:
    """Every piece of personal data in ``text``, as non-overlapping spans of the original text, in order."""
    v = view(text)
    spans: list[PiiSpan] = []
    if "@" in v.text:
        for match in _EMAIL.finditer(v.text):
            spans.append(v.span("email", match.start(), match.end()))
    for match in _NUMBER_ANY.finditer(v.text):
        run = match.group()
        if len(run) < 7:  # fewer than seven digits: no personal number
            continue
        before = v.text[max(0, match.start() - 12) : match.start()]
        if _DIGIT_RUN.match(run) or _NUMBER_CONTEXT.search(before) or _TURN_IN.search(run):
            spans.extend(_numbers(v, run, match.start()))
        else:
            for strong in _NUMBER_STRONG.finditer(run):
                if len(strong.group()) >= 7:
                    spans.extend(_numbers(v, strong.group(), match.start() + strong.start()))
    for match in _PLATE.finditer(v.text):
        spans.append(v.span("plate", match.start() + 2, match.end()))
    for start, end in _names(v.text):
        spans.append(v.span("name", start, end))
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


# ---------------------------------------------------------------- masking
#: (digits kept at the start, digits kept at the end) of each kind; other kinds keep none.
_KEEP = {"mobile": (3, 4), "id": (6, 4), "bank_card": (0, 4)}


def _masked(kind: str, original: str) -> str:
    """The span with its personal characters starred and its separators (spaces, dashes, turn labels) kept."""
    if kind == "email":
        return "***" + original[original.index("@") :] if "@" in original else "*" * len(original)
    if kind in ("name", "plate"):
        return "".join("*" if _view_of(c) or c.isalnum() else c for c in original)
    marks = [bool(_DIGIT_MARK.fullmatch(_view_of(c).translate(_NUMERAL_DIGITS) or "-")) for c in original]
    total = sum(marks)
    head, tail = _KEEP.get(kind, (0, 0))
    if kind == "mobile" and total == 13:  # +86 before the number
        head = 5
    if head + tail >= total:
        head = tail = 0
    out, seen = [], 0
    for c, is_digit in zip(original, marks, strict=True):
        if is_digit:
            seen += 1
            out.append(c if seen <= head or seen > total - tail else "*")
        else:
            out.append(c)
    return "".join(out)


def mask(text: str) -> str:
    """``text`` with every span of :func:`find` masked; the rest is unchanged.

    Masked again until nothing changes: the digits a mask leaves visible
    (138****5678) may join the groups beside them into a run the first pass
    did not see. Masking is then idempotent, which the fuzzer checks.
    """
    for _ in range(5):
        spans = find(text)
        if not spans:
            return text
        masked = "".join(_pieces(text, spans))
        if masked == text:
            return text
        text = masked
    return text


def _pieces(text: str, spans: list[PiiSpan]) -> Iterator[str]:
    pos = 0
    for span in spans:
        yield text[pos : span.start]
        yield _masked(span.kind, text[span.start : span.end])
        pos = span.end
    yield text[pos:]
