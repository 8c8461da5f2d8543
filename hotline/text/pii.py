"""Masking of personal data before a case is stored, indexed or logged: fail closed.

What is masked: every number that reads as seven digits or more (mobiles
keep 3+4 digits visible for the callback, ID numbers 6+4, bank cards the last
4; an unknown number is masked whole), e-mail addresses (written or spelled
out: a t, 艾特, （at）, 点com), QQ and WeChat ids, passports and permits,
licence plates, and names: after the words that announce one (我叫, 姓名：,
名叫 …), after a relation (我老公, 我家孩子), a greeting (这边是), the agent's
question (您贵姓？…姓王), before a title (先生, 女士, 老师) or a phone number,
and in Latin letters after 姓名：.

Numbers fail closed. Callers dictate them in every shape (``139 1234 5678``,
``幺三九杠一二三四``, ``四个八``, ``前三位139…后四位5678``, split across turns
of the dialogue, read back by the agent), and each new round of patterns
missed the next shape. So the search runs on a normalised *view* of the text
(NFKC, invisibles removed, every digit form and numeral read as a digit,
labels of the groups and the letter O between digits handled), and any run of
digit groups with little between them (separators, fillers, anything up to
eight characters, a turn of the dialogue) that holds seven digits or more is
masked — unless each group is positively recognised as something that must
stay: a date or a time, an amount or a count with its unit, a code after the
word that names it (订单号, 运单号, 编号), a road or a standard's number, a room
code, a service number (12345), a decimal. Even those are masked when, with
the groups beside them, they spell a mobile, an ID, a card or a landline
(1 3000000000份), or stand in a list beside a masked group (05-184、055).

Each span found in the view maps back onto the original characters, and only
the digits (or the name's characters) are replaced there, so agents still read
the text as it was said. A missed mask is a privacy incident; an over-masked
number is an inconvenience: both are measured (``bench/pii.py``, BENCHMARKS.md).
Every pattern is bounded and looked for once, so the cost is linear in the
text.
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

_MOBILE = re.compile(r"1[3-9]\d{9}", re.ASCII)
_PLATE = re.compile(
    r"[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Za-z][·•]?[A-Za-z0-9]{5,6}(?![A-Za-z0-9])"
)
_HAN = "\u4e00-\u9fff"
# Where a name surely follows (any characters may form it).
_NAME_AFTER = re.compile(
    rf"(我叫|我的名字叫|我名字叫|名字是|名字叫|名叫|叫做|本人叫|本人姓名|姓名是|姓名叫|姓名[:：]|联系人是|联系人[:：]?)"
    rf"(?!某)([{_HAN}]{{1,4}})"
)
# Where a name may follow (我是业主, 本人在海陵区住): only a surname and a short given name before a boundary.
_NAME_MAYBE = re.compile(rf"(我是|本人|叫我|这边是|这里是|我这边是)([{_HAN}]{{1,4}})")
#: Relations and people a caller names (我老公张建国, 我家孩子叫李小明): the name model decides.
_RELATION = re.compile(
    r"(?:我|俺|我们)(?:家)?(?:的)?(?:老公|爱人|丈夫|老婆|妻子|媳妇|太太|孩子|小孩|儿子|女儿|闺女|父亲|母亲|爸爸|妈妈|老爸|老妈|爸|妈"
    r"|哥哥|姐姐|弟弟|妹妹|哥|姐|弟|妹|爷爷|奶奶|外公|外婆|姥姥|姥爷|公公|婆婆|岳父|岳母|朋友|同学|邻居|同事|亲戚|家属|老人|孙子"
    r"|孙女|侄子|侄女|外甥)(?:叫|是|名叫|名字叫|姓名是|的名字是|[,，:：])?"
)
#: A surname given alone after the agent asks for it (坐席：您贵姓？市民：姓王 / 市民：免贵姓诸葛).
_ASKED_SURNAME = re.compile(r"(?:贵姓|姓什么)[？?。，,]?(?:[^。？?]{0,6}?[:：])?(?:免贵)?(?:我)?(?:姓)?")
_CLAUSE_SURNAME = re.compile(r"(?:^|(?<=[：:，,。！!？?；;]))(?:免贵|我)?姓(?![名氏])")
#: Names written in Latin letters after the field that announces them (姓名：Zhang San, 联系人：LI Ming).
_LATIN_NAME = re.compile(r"(?:姓名|联系人|名字|本人|我叫|我是)[是为:：]?([A-Z][A-Za-z]{1,12}(?:[A-Z][a-z]{1,12}){0,2}|[a-z]{2,12}[A-Z]?[a-z]{1,12})")
#: What follows a word that only looks like a name: a place (高新区), a weekday (周一), an organisation.
_NOT_AFTER_NAME = re.compile(r"^(?:区|县|市|镇|乡|村|街|路|巷|小区|花园|新村|公司|医院|学校|中学|小学|大学|银行|集团|广场|大厦|公园)")
_WEEKDAY = re.compile(r"^周[一二三四五六日天末]")
_NUMBER_NEAR = re.compile(r"电话|手机|[0-9０-９*＊]{3}")
_BEFORE_NUMBER = re.compile(rf"([{_HAN}]{{2,12}}?)(?=[:：]?(?:电话|手机|联系电话|[0-9０-９*＊]{{3}}))")
_SURNAME_AFTER = re.compile(rf"(我姓|免贵姓|本人姓)([{_HAN}]{{1,2}})")
_GIVEN_AFTER_SURNAME = re.compile(rf"^[,，、]?(?:名|叫|单名|全名|名字叫)([{_HAN}]{{1,3}})")
_TITLE = re.compile(r"(先生|女士|小姐|师傅|阿姨|老师)")
_FULL_NAME_TITLES = frozenset({"先生", "女士", "小姐", "师傅"})
#: Characters after which a full name may start (物业张伟先生, 找李明师傅).
#: Surnames that after 我是/本人 are nearly always a word (于 on, 曾 once, 向 towards …).
_FUNCTION_SURNAMES = frozenset("于曾向将和万龙能因全")
_NOT_SURNAME_BIGRAMS = frozenset({"主任", "责任", "担任", "信任", "前任", "现任", "新任", "上任", "继任", "历任",
                                  "数学", "文学", "化学", "大学", "中学", "小学", "同学", "补习", "英语", "语文"})
_BEFORE_NAME = set("是的找给和跟与请问叫位员业让被对向把说系：:，。,.！？!? ")
# Characters that end a name: verbs, particles and place words that follow one in speech.
_NAME_STOP = set("是在住的家今想要从来打现我你他她反就呢啊嗯吧哈了呀吗，。,.！？!?、；;：:电号身手联")
_COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐", "夏侯", "长孙")
#: The hundred commonest surnames: where only the words before a number suggest a name (李光玉13912345678).
_CORE_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_COMMON_SURNAMES = _CORE_SURNAMES | frozenset(
    "常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
#: Characters of given names, the commonest few hundred in China's household registers: the name model
#: reads a surname and one or two of these, so that 我老公张建国 is a name and 我老公在家 is not.
_GIVEN_CHARS = frozenset(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂华兰梅玲燕红鹏辉飞宇浩凯鑫婷雪琳晶颖倩佳欣怡嘉子轩涵睿博文思雨晨阳俊志建国海林峰斌波微"
    "宁亮龙云新春玉凤金荣德庆东福生成永胜祥才发贵立利民彬松柏山川江河清泉正义忠诚信仁礼智勇武斌彪豪杰俊帆航翔鹰鹤凤丹红紫青翠"
    "兰芝莲荷菊梅竹松琴棋书画诗词歌舞秋冬夏月星辰光明亮晓旭曦昊天宇宙乾坤坚刚毅志远航帆锋锐鸣声振兴旺盛昌隆泰康安乐欢喜悦怡"
    "婉婧媛妍娇娥娟娴嫣姗姝琪琦瑶瑾瑜璐珊珍珠玲琳瑞祥祺禧福禄寿喜财宝金银铜铁钢锋锦绣彩霞露霜雪冰洁清澈淑贤惠慧敏捷聪颖秀丽"
    "美艳芬芳蕊蓉萍莉莎菲萌蕾薇芸茜茹荣华英杰雄伟健康宏洪鸿浩瀚涛波澜海洋江河湖泊泽润源泉渊深沉静怡宁安平和顺利达通畅广博"
    "文武斌彬杉森林树根本元正大中小少长幼兵卫军国家邦民众群生存在有宝贝贞节烈忠孝悌廉耻勤俭朴素真善德艺双馨永久长远恒常"
    "一二三四五六七八九十百千万亿春夏秋冬东西南北中红橙黄绿蓝紫白黑金木水火土日月星风云雷电雨雪霜露山石田土玉珍宝琼瑶"
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


def classify(digits: str) -> str:
    """The kind of a personal number of seven or more ``digits`` (maybe a final X); ``number`` when unknown.

    The kind decides only what stays visible (:data:`_KEEP`): an unknown
    number is masked whole.
    """
    n = len(digits)
    if digits.endswith("X"):
        return "id" if n == 18 and looks_like_id(digits) else "number"
    if n in (15, 18) and looks_like_id(digits):
        return "id"
    if 16 <= n <= 19 and digits[0] in "345689" and luhn_ok(digits):
        return "bank_card"
    if n == 11 and _MOBILE.fullmatch(digits):
        return "mobile"
    if n == 13 and digits.startswith("86") and _MOBILE.fullmatch(digits[2:]):
        return "mobile"
    if 10 <= n <= 12 and digits[0] == "0" and digits[1] != "0":
        return "landline"
    if 7 <= n <= 8 and digits[0] not in "01":
        return "landline"
    return "number"


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


class _Folding(dict[int, str]):
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
    normalised = text.translate(_FOLDING)  # a dict whose __missing__ fills it as characters are first seen
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
    if candidate.startswith(_ROLE_WORDS) or _WEEKDAY.match(candidate):
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
        if _NOT_AFTER_NAME.match(rest[size : size + 2]) or _NOT_AFTER_NAME.match(rest[size - 1 : size]):
            return 0  # 这边是高新区
        if not following or following in _NAME_STOP or not ("\u4e00" <= following <= "\u9fff"):
            return size
    return 0


def person_name(text: str, start: int, sure: bool = False) -> int:
    """The length of the person's name that starts at ``text[start]``, or 0: a surname (compound ones
    whole) and one or two given-name characters, then a boundary.

    Unless ``sure`` (the words before announce a name), every given character
    must be a common one (:data:`_GIVEN_CHARS`); a place (高新区), a weekday
    (周一), an anonymised 张某 and a role word are never names.
    """
    rest = text[start : start + 6]
    if not rest or rest.startswith(_ROLE_WORDS) or _WEEKDAY.match(rest) or "某" in rest[:3]:
        return 0
    surname = 2 if rest.startswith(_COMPOUND_SURNAMES) else (1 if rest[0] in _COMMON_SURNAMES else 0)
    if not surname:
        return 0
    best = 0
    for size in (surname + 1, surname + 2):
        given = rest[surname:size]
        if len(given) < size - surname or any(c in _NAME_STOP or not "\u4e00" <= c <= "\u9fff" for c in given):
            break
        if not sure and any(c not in _GIVEN_CHARS for c in given):
            break
        if _NOT_AFTER_NAME.match(text[start + size : start + size + 2]) or _NOT_AFTER_NAME.match(given[-1:]):
            return 0
        best = size
    return best


def _names(text: str) -> Iterator[tuple[int, int]]:
    for match in _RELATION.finditer(text):
        size = person_name(text, match.end())
        if size:
            yield match.end(), match.end() + size
    for pattern in (_ASKED_SURNAME, _CLAUSE_SURNAME):
        for match in pattern.finditer(text):
            rest = text[match.end() : match.end() + 4]
            size = 2 if rest.startswith(_COMPOUND_SURNAMES) else (1 if rest[:1] in _COMMON_SURNAMES else 0)
            if size:
                yield match.end(), match.end() + (person_name(text, match.end()) or size)
    for match in _LATIN_NAME.finditer(text):
        yield match.start(1), match.end(1)
    for match in _BEFORE_NUMBER.finditer(text) if _NUMBER_NEAR.search(text) else ():  # 代表：王丹叶 0523…, 敬礼周林飞电话, 李光玉13912345678
        run_start, end = match.span(1)
        size = end - run_start
        after_digit = run_start > 0 and text[run_start - 1].isdigit()
        if text[run_start] in _CORE_SURNAMES and person_name(text, run_start, sure=size == 3) == size and not (
                after_digit and size < 3):
            yield run_start, end  # the run of characters is the name (not 3栋2单元1301室, not 时间2019年)
        elif size > 3 and text[end - 3] in _CORE_SURNAMES and person_name(text, end - 3) == 3:  # closing a longer run
            yield end - 3, end
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
        for back in ((4, 3, 2, 1) if match.group() in _FULL_NAME_TITLES else (2, 1)):
            start = match.start() - back
            if start < 0:
                continue
            head = text[start : match.start()]
            if text[max(0, start - 1) : start + 1] in _NOT_SURNAME_BIGRAMS:  # 班主任老师
                continue
            if back == 4 and not head.startswith(_COMPOUND_SURNAMES):
                continue
            if match.group() not in _FULL_NAME_TITLES and back == 2 and not head.startswith(_COMPOUND_SURNAMES):
                continue  # 诸葛老师, but 历史老师 and 宿管阿姨 are no names
            bounded = not text[start - 1 : start] or text[start - 1] in _BEFORE_NAME or not (
                "\u4e00" <= text[start - 1] <= "\u9fff")
            if (head[0] in _COMMON_SURNAMES or head.startswith(_COMPOUND_SURNAMES)) and all(
                "\u4e00" <= c <= "\u9fff" and c not in _NAME_STOP for c in head
            ) and (bounded or (back == 1 and match.group() in _FULL_NAME_TITLES)):
                yield start, match.start()
                break


# ---------------------------------------------------------------- ids that are not only digits
_SPACE = "\ue000"  # whitespace, kept one for one in the number view so that groups never join across it
_S = rf"[\s{_SPACE}]"
_LOCAL = r"[A-Za-z0-9._%+\-]{1,64}"
_AT = rf"(?:{_S}*(?:@|艾特|圈a|\(at\)|（at）|\[at\]|【at】){_S}*|{_S}+at{_S}+|{_S}*a{_S}+t{_S}*)"
_DOT = rf"(?:{_S}*(?:\.|。|点|\(dot\)|（dot）){_S}*|{_S}+dot{_S}+)"
_TLD = r"(?:com|cn|net|org|edu|gov|info|top|vip|cc|me|io|co|hk|tw|us|uk|jp|de|fr)"
#: An e-mail address, written or spelled out (zhangsan a t qq 点com). Every repetition is bounded and the
#: local part may not start inside another, so the cost stays linear in the text (the unbounded
#: ``[…]+@(…)+`` took 0.5 s on 20,000 characters of ``a…@b``).
_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9._%+\-]){_LOCAL}{_AT}(?:[A-Za-z0-9\-]{{1,63}}{_DOT}){{1,6}}{_TLD}(?:{_DOT}{_TLD})?(?![A-Za-z])"
    rf"|(?<![A-Za-z0-9._%+\-]){_LOCAL}@[A-Za-z0-9\-]{{1,63}}(?:\.[A-Za-z0-9\-]{{1,63}}){{1,6}}",
    re.IGNORECASE,
)
#: Passports (E12345678), Hong Kong–Macao and Taiwan permits (C…, H…, M…, L…), with or without their cue.
_PASSPORT = re.compile(
    r"(?<![A-Za-z0-9])(?:E[0-9]{8}|E[A-Z][0-9]{7}|G[0-9]{8})(?![0-9])"
    r"|(?:护照|通行证|回乡证|台胞证|签证|证件号|证件号码)[是为:：\s\ue000]{0,3}([A-Za-z]{1,2}[0-9]{7,10})(?![0-9])"
)
_WECHAT = re.compile(
    r"(?:微信(?:号|号码|账号|帐号|id|ID)?|vx|VX|wx|WX|weixin|wechat)[是为:：\s\ue000]{0,3}([A-Za-z][A-Za-z0-9_\-]{4,29})"
    r"|([wW][xX]id_[A-Za-z0-9_\-]{4,30})"
)
_QQ = re.compile(r"(?:[Qq]{2}|扣扣|企鹅)(?:号|号码|群|邮箱)?[是为:：\s\ue000]{0,3}([0-9]{5,12})")


def _tagged_ids(t: str) -> Iterator[tuple[str, int, int]]:
    """E-mails, passports and permits, WeChat and QQ ids, plates: (kind, start, end) in the number view."""
    for match in _EMAIL.finditer(t):
        yield "email", match.start(), match.end()
    for match in _PASSPORT.finditer(t):
        group = 1 if match.group(1) else 0
        yield "passport", match.start(group), match.end(group)
    for match in _WECHAT.finditer(t):
        group = 1 if match.group(1) else 2
        yield "wechat", match.start(group), match.end(group)
    for match in _QQ.finditer(t):
        yield "qq", match.start(1), match.end(1)
    for match in _PLATE.finditer(t):
        yield "plate", match.start() + 2, match.end()


# ---------------------------------------------------------------- numbers: fail closed
# The rule: after normalisation every run that reads as seven or more digits, whatever stands between its
# digit groups (separators, fillers, 杠 and 点, labels of the groups, other turns of the dialogue), is
# masked, unless each group is positively recognised as something that must stay: a date or a time, an
# amount or a count with its unit, a code after the word that names it (订单号, 运单号, 编号 …), a road or a
# standard's number, a room code, a service number (12345), a decimal. A missed mask is a privacy
# incident; an over-masked number is an inconvenience, and both are measured (BENCHMARKS.md).
_N = "".join(_NUMERALS)
_MIN_DIGITS = 7
_GAP = 8  # characters of anything (spaces not counted) that may stand between two groups of one number
_TURN_GAP = 24  # … when the gap holds a turn of the dialogue (坐席：嗯，请讲 市民：)
_JOINERS = "\ue000" + r"\-‐‑‒–—―−﹣－_·・.,，、。…/\\()（）\[\]:：;；~～ 嗯呃额啊呀哦杠横点"
#: A numeral with no other numeral beside it (ASCII digits do not count: a number is said in one script, and
#: 张三 13912345678 is a name and a mobile) is a word: 一直, 两个, 个洞.
_LONE_NUMERAL = re.compile(rf"(?<![{_N}])[{_N}](?![{_N}])")
_LETTER_ZERO = re.compile(r"(?<=[0-9])[Oo]+(?=[0-9])")
_GROUP_LABEL = re.compile(r"(?:前|后|中间|最后|末|尾|头|开头|前面|后面|第)([0-9]{1,2})(?=位)")
_TURN_LABEL_TEXT = r"(?:坐席|客服|话务员|接线员|工作人员|市民|来电人|来电者|来电|用户|群众|说话人\d?|[AB甲乙])[:：]"
_TURN_LABEL = re.compile(_TURN_LABEL_TEXT)
_JOIN_WORD = rf"(?:[{_JOINERS}]|然后|再|还有|后面|是|对吗|对|好的|您说|请讲|{_TURN_LABEL_TEXT})"
_NEAR_DIGIT_LEFT = re.compile(rf"[{_N}]{_JOIN_WORD}{{1,8}}$")
_NEAR_DIGIT_RIGHT = re.compile(rf"^{_JOIN_WORD}{{1,8}}[{_N}]")
#: Words that announce a number: a gap holding one starts another number.
_CUE = re.compile(
    r"电话|手机|座机|号码|身份证|车牌|证件|卡号|银行卡|账号|帐号|邮箱|QQ|微信|订单|单号|运单|快递|物流|发票|流水|交易|合同"
    r"|工单|编号|批次|型号|序列号|条码|户号|账单|票号|案号|受理号|文号|字第|房号|邮编|车次|航班|学号|准考证|备案号|信用代码|税号"
)
_UNIT = (
    r"(?:元|块(?!钱?\d)|角|毛钱?|分钱|万|亿|千(?![米克瓦])|百|十|美元|港币|人民币|千米|公里|米|厘米|毫米|平方?米?|亩|公顷|吨|斤|公斤|千克|克"
    r"|升|毫升|度|℃|%|％|‰|个(?![0-9])|人|名|位(?!数)|户|家|栋|幢|号楼|楼|层|单元|室|号(?!码)|间|套|路|次|趟|天|日|周|月"
    r"|年|岁|小时|时|分钟|分|秒|辆|台|部|件|份|张|本|条|项|批|处|所|座|棵|只|头|倍|届|期|班|级|排|组|节|页|章|款|点(?![0-9])|车位"
    r"|床|支|根|片|袋|箱|瓶|包|盒|碗|口|扇|盏|公斤|瓦|千瓦|伏|分贝|KB|MB|GB|km|kg|cm|mm|m²|m|g|L|W|kW|kWh|V|dB|kV"
    r"|区|县|市|州|镇|乡|村|省|组|队|届|多(?![0-9])|余(?![0-9]))"
)
_AMOUNT = rf"(?:[¥￥$]{_SPACE}?)?(?:\d{{1,3}}(?:,\d{{3}})+(?:\.\d+)?|\d+(?:\.\d+)?)"
_KEEP_PATTERNS = re.compile(
    r"(?=[0-9¥￥$第GSXYZJCDHQ])(?:"  # every pattern starts so: a cheap test at each position
    + "|".join(
        (
            # dates and times: 2025-06-01, 2013-02-2710:06:51, 2025年6月1日, 6月1日, 09:30, 2014-2015, 20250601
            r"(?<![0-9])(?:19|20)\d\d年(?:1[0-2]|0?[1-9])月(?:3[01]|[12]\d|0?[1-9])[日号]?",
            r"(?<![0-9])(?:[01]?\d|2[0-3])[:：][0-5]\d(?:[:：][0-5]\d)?(?![0-9])",
            # amounts, counts and lists of them with a unit: 1,234.50元, 3栋2单元1301室, 49、49、50栋
            rf"(?P<count>(?<![0-9.,])(?:{_AMOUNT}(?:{_SPACE}?[、,，/和及与至到~～\-—]{_SPACE}?{_AMOUNT}){{0,10}})"
            rf"(?:多|余|来|几)?{_SPACE}?(?P<unit>{_UNIT}))",
            # roads and standards: 328国道, S229, G2, GB3095-2012
            r"\d{1,4}(?:国道|省道|县道|乡道|高速|号线)",
            r"(?<![A-Za-z0-9])[GSXYZ]\d{1,4}(?![0-9])",
            r"(?:GB|GBT|GB/T|JGJ|CJJ|DB|HJ|QB)\d{1,6}(?:[-—]\d{2,4})?",
            # ordinals: 第1、2、3条
            r"第\d{1,4}(?:[、,，]\d{1,4})*",
        )
    )
    + ")"
)
#: A code after the word that names it (订单号2023…, 运单号 7788 1234 …) stays whole.
#: What stays only when no digit group stands close beside it: a compact date (20190518), a decimal and a
#: room code (1-1-1101, a36-1-501) are also how an ID's middle, a mobile's tail and a landline look.
_KEEP_ALONE = re.compile(
    r"(?=[0-9A-Za-z])(?:(?P<date>(?<![0-9])(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![0-9]))"
    r"|(?P<pdate>(?<![0-9])(?:19|20)\d\d[-./,，、。](?:1[0-2]|0?[1-9])[-./,，、。](?:3[01]|[12]\d|0?[1-9])[日号]?"
    rf"(?:{_SPACE}?(?:[01]?\d|2[0-3])[:：][0-5]\d(?:[:：][0-5]\d)?|(?![0-9])))"  # 2025-06-01, 2013-02-2710:06:51
    r"|(?P<years>(?<![0-9])(?:19|20)\d\d[-~～至到—–](?:19|20)?\d\d(?![0-9]))"  # 2014-2015
    r"|(?P<ym>(?<![0-9])(?:19|20)\d\d[-./。](?:1[0-2]|0?[1-9])(?![0-9]|[./][0-9]))"  # 1999.11-2008.06
    r"|(?P<decimal>(?<![0-9.])\d{1,6}\.\d{1,4}(?![0-9]|\.[0-9]))"  # scores and measures (78.16、79.00)
    r"|(?P<service>(?<![0-9])(?:110|119|120|122|114|12345|12315|12369|12319|12320|12333|12348|12351|12366|12358"
    r"|12309|12306|12121|12580|95598|96777|10086|10010|10000)(?![0-9]))"  # 12345 and its siblings
    r"|(?P<room>(?<![0-9A-Za-z\-])[A-Za-z]?\d{1,3}(?:-\d{1,3}){0,2}-\d{1,4}(?![0-9\-])))"
)
_NEAR_ANY = rf"[{_JOINERS}]"
_CODE = re.compile(
    r"(?:订单|查询码|索引号|单号|运单|快递|物流|发票|流水|交易号|合同|工单|编号|批次|型号|序列号|条码|户号|账单|票号|案号|受理号|文号"
    rf"|房号|邮编|邮政编码|车次|航班|学号|准考证|备案号|信用代码|税号)[号码是为:：{_SPACE}]{{0,4}}"
    rf"([A-Za-z0-9][A-Za-z0-9\-_/()（）{_SPACE}]{{3,40}})"
)
_DIGIT_ATOM = re.compile(r"[0-9]+|\*+")
_NOT_DIGIT = re.compile(r"[^0-9*]+")
_MOBILE_OR_ID = re.compile(r"1[3-9]\d{9}|\d{17}[\dX]", re.ASCII)


def _number_view(text: str) -> View:
    """The view for numbers: numerals read as digits where they stand beside digits, spaces kept as one mark."""
    spaced = re.sub(r"\s", _SPACE, text)  # one for one: the view keeps the marks, and every position
    v = view(spaced)
    t = v.text
    lone = [m.start() for m in _LONE_NUMERAL.finditer(t)
            if not _NEAR_DIGIT_LEFT.search(t[max(0, m.start() - 24) : m.start()])
            and not _NEAR_DIGIT_RIGHT.match(t[m.end() : m.end() + 24])]
    digits = list(t.translate(_NUMERAL_DIGITS))
    for i in lone:  # 一直, 两个, 个洞: a numeral alone among words is a word
        digits[i] = t[i]
    for m in re.finditer(r"(?<=[12][09]\d\d)一(?=[12][09]\d\d)", t):  # 1987一1995: a dash between years
        digits[m.start()] = "-"
    t = "".join(digits)
    t = _LETTER_ZERO.sub(lambda m: "0" * len(m.group()), t)
    t = _GROUP_LABEL.sub(lambda m: m.group()[: m.start(1) - m.start()] + "#" * len(m.group(1)), t)
    return View(t, v.origin)


def _numbers(t: str, taken: bytearray) -> Iterator[tuple[str, list[int]]]:
    """The personal numbers of the number view ``t``: (kind, the positions of their digits)."""
    if len(_NOT_DIGIT.sub("", t)) < _MIN_DIGITS:  # most texts: nothing to look for
        return
    soft = [0] * len(t)  # what stays unless it completes a personal number with the groups beside it
    alone: set[int] = set()  # … and what stays only if no group beside it is masked
    matches = 0
    for match in _KEEP_PATTERNS.finditer(t):
        if _spells_itself(match.group(), count=match.group("count") is not None):  # 13000-000000份: a mobile
            continue
        if match.group("count"):
            if match.group("unit")[0] not in "元块万亿美港人角毛" and max(
                map(len, re.findall(r"[0-9]+", match.group("count")))
            ) > 6:  # 052386881234号: no count
                continue
        matches += 1
        soft[match.start() : match.end()] = [matches] * (match.end() - match.start())
    for match in _KEEP_ALONE.finditer(t):
        if _spells_itself(match.group()):  # 1-300-000-0000 is no room
            continue
        if match.group("room") and not _room_like(match.group()):  # 220-718-596, 747-8478: numbers, not rooms
            continue
        if match.group("date") and (  # 20190518 beside other digits is a part of a number, not a date
            re.search(rf"[0-9]{_NEAR_ANY}{{1,8}}$", t[max(0, match.start() - 9) : match.start()])
            or re.match(rf"{_NEAR_ANY}{{1,8}}[0-9]", t[match.end() : match.end() + 9])
        ):
            continue
        matches += 1
        alone.add(matches)
        soft[match.start() : match.end()] = [matches] * (match.end() - match.start())
    hard = bytearray(taken)
    for match in _CODE.finditer(t):
        hard[match.start(1) : match.end(1)] = b"\x01" * (match.end(1) - match.start(1))
    # Chains of groups that may be one number; hard-kept groups (codes after their word, ids) end a chain.
    chains: list[list[tuple[int, int]]] = [[]]
    for found in _DIGIT_ATOM.finditer(t):
        a, b = found.span()
        if any(hard[a:b]) or t[a] == "*":  # what a mask left (a name's, a number's) ends a chain too
            chains.append([])
            continue
        if chains[-1] and not _joins(t[chains[-1][-1][1] : a]):
            chains.append([])
        chains[-1].append((a, b))
    for chain in chains:
        kept = [soft[a] if len(set(soft[a:b])) == 1 else 0 for a, b in chain]  # a match keeps whole groups
        _unkeep_completing(t, chain, kept)
        _unkeep_beside_masked(t, chain, kept, alone)
        run: list[tuple[int, int]] = []
        for atom, is_kept in zip(chain, kept, strict=True):
            if is_kept:
                yield from _judged(t, run)
                run = []
            else:
                run.append(atom)
        yield from _judged(t, run)


def _unkeep_completing(t: str, chain: list[tuple[int, int]], kept: list[int]) -> None:
    """A kept group that, with whole groups beside it, spells a mobile or an ID is part of that number
    (1 3000000000份, 1300000.0000, 321202 19900307 1235): fail closed. ``kept`` holds the number of the
    match that keeps each group (0: none); a match is taken whole (1-1-1803、1-1-1703 spells no mobile), and
    kept matches alone complete only a phone, and only two of them (1953年7月。1974年 reads 19537197421, and a
    long room list holds IDs by chance), and only groups with nothing but separators between them do."""
    n = len(kept)
    _unkeep_phone_pairs(t, chain, kept)
    unkept = [i for i in range(n) if not kept[i]]
    if not unkept or len(unkept) == n:  # nothing kept, or nothing to complete: most chains (and room lists)
        return
    starts = {i for i in range(n) if not kept[i] or i == 0 or kept[i - 1] != kept[i]}
    ends = {i for i in range(n) if not kept[i] or i == n - 1 or kept[i + 1] != kept[i]}
    near = bytearray(n)  # within a window's reach of a group that is not kept
    for j in unkept:
        near[max(0, j - 18) : j + 19] = b"\x01" * (min(n, j + 19) - max(0, j - 18))
    for i, is_kept in enumerate(kept):
        if not is_kept or (i > 0 and kept[i - 1] == is_kept) or not near[i]:
            continue
        for first in (f for f in range(max(0, i - 18), i + 1) if f in starts and _tight(t, chain, f, i)):
            for last in (e for e in range(i, min(n, first + 19)) if e in ends):
                if not _tight(t, chain, i, last):
                    break
                digits = "".join(t[a:b] for a, b in chain[first : last + 1])
                if len(digits) > 19:
                    break
                if _spells_personal(digits) and not all(kept[first : last + 1]):
                    for j in range(first, last + 1):
                        kept[j] = 0


def _unkeep_phone_pairs(t: str, chain: list[tuple[int, int]], kept: list[int]) -> None:
    """Two kept matches side by side, separators alone between, that together spell a phone (1-300 000-0000)."""
    spans: list[tuple[int, int, int]] = []  # (match, first group, last group)
    for i, match in enumerate(kept):
        if match and spans and spans[-1][0] == match:
            spans[-1] = (match, spans[-1][1], i)
        elif match:
            spans.append((match, i, i))
    for (_m1, a1, b1), (_m2, a2, b2) in zip(spans, spans[1:], strict=False):
        if a2 == b1 + 1 and _tight(t, chain, b1, a2):
            digits = "".join(t[a:b] for a, b in chain[a1 : b2 + 1])
            if _spells_phone(digits):
                for j in range(a1, b2 + 1):
                    kept[j] = 0


def _unkeep_beside_masked(t: str, chain: list[tuple[int, int]], kept: list[int], alone: set[int]) -> None:
    """A room code, a decimal, a date or a service number stays only when no group that is not kept stands
    beside it with separators alone between (05-184、055 is a number; 1-1-1101、1-1-2001 a list), nor a kept
    one behind something that is no list separator (0-41-748嗯6-9). A run of groups that are not kept takes
    its kept neighbours in only while it is shorter than a number: a long list is not masked whole for one
    stray group at its end, and 9-5、10-085。6 is masked."""
    members: dict[int, list[int]] = {}
    for i, match in enumerate(kept):
        members.setdefault(match, []).append(i)
    n = len(kept)

    def take(i: int) -> None:
        for k in members[kept[i]]:
            kept[k] = 0

    before = list(kept)
    for j in range(n - 1):  # kept pieces of one number: no list separator between them
        if before[j] in alone and before[j + 1] in alone and before[j] != before[j + 1] and _tight(t, chain, j, j + 1) \
                and not _LIST_GAP.fullmatch(t[chain[j][1] : chain[j + 1][0]]):
            for i in (j, j + 1):
                if kept[i]:
                    take(i)
    changed = True
    while changed:  # each step takes in one whole match, so this ends; runs under seven digits only
        changed = False
        j = 0
        while j < n:
            if kept[j]:
                j += 1
                continue
            end = j
            while end + 1 < n and not kept[end + 1] and _tight(t, chain, end, end + 1):
                end += 1
            if sum(b - a for a, b in chain[j : end + 1]) < _MIN_DIGITS:
                for i in (j - 1, end + 1):
                    if 0 <= i < n and kept[i] in alone and _tight(t, chain, min(i, j if i < j else end),
                                                                 max(i, j if i < j else end)):
                        take(i)
                        changed = True
                        break
            j = end + 1


_TIGHT = re.compile(rf"{_JOIN_WORD}*")
_LIST_GAP = re.compile(r"[、，,；;/]+")  # a space is no list separator: 1-3 0-0 000.0000 is a mobile


def _tight(t: str, chain: list[tuple[int, int]], first: int, last: int) -> bool:
    """Whether only separators or turns of the dialogue stand between the groups ``first`` … ``last`` (no
    words: 750元，搭两餐900元)."""
    gaps = (t[chain[j][1] : chain[j + 1][0]] for j in range(first, last))
    return all(_TIGHT.fullmatch(gap) or (_TURN_LABEL.search(gap) and len(gap) <= _TURN_GAP) for gap in gaps)


def _room_like(code: str) -> bool:
    """Building-unit-room (1-1-1101, 12-3-502, a36-1-501) or building-room (3-502): at most eight digits, and a
    building of one or two digits where there are two parts (747-8478 is a local phone number)."""
    groups = re.findall(r"[0-9]+", code)
    digits = sum(map(len, groups))
    return digits <= 8 and (len(groups) > 2 or (len(groups[0]) <= 2 and digits <= 6))


def _spells_itself(kept: str, count: bool = False) -> bool:
    """Whether what a pattern would keep spells a mobile, an ID, a card or a landline (1-300-000-0000), or, for a
    count, holds one (13912345678份; a date and its time may hold eleven digits that read as a mobile)."""
    digits = re.sub(r"[^0-9X]", "", kept)
    return _spells_personal(digits) or (count and bool(_MOBILE_OR_ID.search(digits)))


def _spells_phone(digits: str) -> bool:
    """A mobile or a landline with its area code (what two kept pieces side by side may spell: 1-300 000-0000)."""
    n = len(digits)
    return (n == 11 and bool(_MOBILE.fullmatch(digits))) or (10 <= n <= 12 and digits[0] == "0" and digits[1] != "0")


def _spells_personal(digits: str) -> bool:
    n = len(digits)
    return digits.isdigit() and (
        (n == 11 and bool(_MOBILE.fullmatch(digits)))
        or (n == 13 and digits.startswith("86") and bool(_MOBILE.fullmatch(digits[2:])))
        or (10 <= n <= 12 and digits[0] == "0" and digits[1] != "0")  # a landline with its area code
        or (n in (15, 18) and looks_like_id(digits))
        or (16 <= n <= 19 and digits[0] in "345689" and luhn_ok(digits))
    )


def _joins(gap: str) -> bool:
    """Whether two digit groups with ``gap`` between them may be one number (fail closed: nearly always)."""
    size = len(gap) - gap.count(_SPACE)
    if size <= _GAP:
        return not _CUE.search(gap)
    return size <= _TURN_GAP and bool(_TURN_LABEL.search(gap)) and not _CUE.search(gap)


def _judged(t: str, run: list[tuple[int, int]]) -> Iterator[tuple[str, list[int]]]:
    """A run of digit groups: masked when it holds seven digits or more, with the kind of what it holds."""
    positions = [i for a, b in run for i in range(a, b)]
    if len(positions) < _MIN_DIGITS:
        return
    end = run[-1][1]
    if t[end : end + 1] == "X" and not t[end + 1 : end + 2].isalpha():
        positions.append(end)
    digits = "".join(t[i] for i in positions)
    kind = classify(digits)
    crossed = any(re.search(r"[^\W\d_]", t[b : following[0]].replace(_SPACE, ""))
                  for (_, b), following in zip(run, run[1:], strict=False))
    if crossed and kind != "mobile":  # across words or turns (a read-back) an ID or a card is chance: whole
        kind = "number"
    if kind != "number" or len(run) == 1:
        yield kind, positions
        return
    # Two numbers side by side (a mobile, then an ID after words between them): each with its kind, when
    # every piece is one; else the whole run is one unknown number, masked whole.
    pieces: list[list[int]] = [[]]
    for (a, b), following in zip(run, [*run[1:], None], strict=True):
        pieces[-1].extend(range(a, b))
        if following and re.search(r"[^\W\d_]", t[b : following[0]].replace(_SPACE, "")):
            pieces.append([])
    kinds = [classify("".join(t[i] for i in piece)) for piece in pieces]
    if len(pieces) > 1 and all(len(p) >= _MIN_DIGITS and k != "number" for p, k in zip(pieces, kinds, strict=True)):
        yield from zip(kinds, pieces, strict=True)
    else:
        yield "number", positions


# ---------------------------------------------------------------- finding
@dataclass(frozen=True, slots=True)
class _Found:
    """A piece of personal data: its span in the original text and, for numbers, the positions of its digits."""

    kind: str
    start: int
    end: int
    digits: tuple[int, ...] = ()


def _found(text: str) -> list[_Found]:
    nv = _number_view(text)
    t = nv.text
    taken = bytearray(len(t))
    found: list[_Found] = []
    for kind, a, b in _tagged_ids(t):
        if b > a:
            taken[a:b] = b"\x01" * (b - a)
            found.append(_Found(kind, nv.origin[a], nv.origin[b - 1] + 1))
    for kind, positions in _numbers(t, taken):
        digits = tuple(sorted({nv.origin[i] for i in positions}))
        found.append(_Found(kind, digits[0], digits[-1] + 1, digits))
    v = view(text)
    for start, end in _names(v.text):
        if end > start:
            found.append(_Found("name", v.origin[start], v.origin[end - 1] + 1))
    return found


def find(text: str) -> list[PiiSpan]:
    """Every piece of personal data in ``text``, as non-overlapping spans of the original text, in order."""
    return _non_overlapping([PiiSpan(f.kind, f.start, f.end) for f in _found(text)])


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


def _apply(text: str, found: list[_Found]) -> str:
    """``text`` with each piece starred: numbers keep the digits their kind leaves visible and every
    separator; an e-mail keeps its domain; names, plates and ids lose every character."""
    out = list(text)
    for f in found:
        if f.digits:
            head, tail = _KEEP.get(f.kind, (0, 0))
            total = len(f.digits)
            if f.kind == "mobile" and total == 13:  # +86 before the number
                head = 5
            if head + tail >= total:
                head = tail = 0
            for i in f.digits[head : total - tail]:
                out[i] = "*"
        elif f.kind == "email":
            local = re.match(rf"{_LOCAL}", text[f.start : f.end])
            end = f.start + (local.end() if local else f.end - f.start)
            out[f.start] = "***"
            for i in range(f.start + 1, end):
                out[i] = ""
        else:
            for i in range(f.start, f.end):
                if out[i] and (_view_of(text[i]) or text[i].isalnum()) and out[i] != "***":
                    out[i] = "*"
    return "".join(out)


def mask(text: str) -> str:
    """``text`` with every piece of personal data masked; the rest is unchanged.

    Masked again until nothing changes: the digits a mask leaves visible
    (138****5678) may join the groups beside them into a run the first pass
    did not see. Masking is then idempotent, which the fuzzer checks.
    """
    for _ in range(5):
        found = _found(text)
        if not found:
            return text
        masked = _apply(text, found)
        if masked == text:
            return text
        text = masked
    return text


#: Kinds that identify a person on their own (a landline-shaped 8-digit code does not).
_IDENTIFYING = frozenset({"mobile", "id", "bank_card", "email", "qq", "wechat", "passport"})


def holds_personal_number(text: str) -> bool:
    """Whether ``text`` (an identifier, not prose) holds a mobile, ID or card number, an e-mail or an account id."""
    return any(f.kind in _IDENTIFYING for f in _found(text)) or bool(
        re.search(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])", view(text).digits)
    )
