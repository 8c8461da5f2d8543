"""PII in the shapes callers and forms really use: a table of variants, generated families, and what must survive.

Masking runs on a normalised view (NFKC, invisibles and spaces removed,
numerals read as digits) and maps back onto the original text, so each test
checks the original is masked where the secret was and untouched elsewhere.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.text import pii

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def make_id(body17: str) -> str:
    total = sum(int(d) * w for d, w in zip(body17, WEIGHTS, strict=False))
    return body17 + "10X98765432"[total % 11]


def make_card(body: str) -> str:
    """``body`` plus its Luhn check digit."""
    for check in "0123456789":
        if pii.luhn_ok(body + check):
            return body + check
    raise AssertionError


def digits_of(text: str) -> str:
    """Every digit the text still shows, in order, whatever its form (the way a reader would collect them)."""
    return re.sub(r"[^\dX]", "", pii.view(text).digits)


MOBILE = "13912345678"
ID18 = make_id("32120219900307123")
ID15 = "321202900307123"
CARD = make_card("621700123456789012")
LANDLINE = "052386881234"

FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
CHINESE = str.maketrans("0123456789", "零一二三四五六七八九")
FINANCIAL = str.maketrans("0123456789", "零壹贰叁肆伍陆柒捌玖")
RADIO = str.maketrans("0123456789", "洞幺两三四五六拐八勾")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# (text, the secret's digits that must not survive). At least 100 rows, written out by hand.
LEAKS: list[tuple[str, str]] = [
    # mobiles: separators of every kind between the usual groups
    ("电话13912345678", MOBILE), ("电话139 1234 5678", MOBILE), ("电话139-1234-5678", MOBILE),
    ("电话139—1234—5678", MOBILE), ("电话139–1234–5678", MOBILE), ("电话139－1234－5678", MOBILE),
    ("电话139‐1234‐5678", MOBILE), ("电话139―1234―5678", MOBILE), ("电话139−1234−5678", MOBILE),
    ("电话139.1234.5678", MOBILE), ("电话139,1234,5678", MOBILE), ("电话139，1234，5678", MOBILE),
    ("电话139/1234/5678", MOBILE), ("电话139_1234_5678", MOBILE), ("电话139、1234、5678", MOBILE),
    ("电话139·1234·5678", MOBILE), ("电话(139)1234-5678", MOBILE), ("电话139 - 1234 - 5678", MOBILE),
    ("电话1391 2345 678", MOBILE), ("电话13 912 345 678", MOBILE), ("电话1 3 9 1 2 3 4 5 6 7 8", MOBILE),
    ("电话1-3-9-1-2-3-4-5-6-7-8", MOBILE), ("电话1.3.9.1.2.3.4.5.6.7.8", MOBILE),
    ("电话139\u00a01234\u00a05678", MOBILE), ("电话139\u30001234\u30005678", MOBILE),
    ("电话139\u20091234\u20095678", MOBILE), ("电话139\t1234\n5678", MOBILE),
    ("电话139\u200b1234\u200b5678", MOBILE), ("电话139\u200d1234\u200c5678", MOBILE),
    ("电话\u202e13912345678\u202c", MOBILE), ("电话139\u20601234\ufeff5678", MOBILE),
    ("电话\u00ad139\u00ad1234\u00ad5678", MOBILE),
    # mobiles: every digit form
    ("电话" + MOBILE.translate(FULLWIDTH), MOBILE), ("电话" + MOBILE.translate(CHINESE), MOBILE),
    ("电话" + MOBILE.translate(FINANCIAL), MOBILE), ("电话" + MOBILE.translate(RADIO), MOBILE),
    ("电话" + MOBILE.translate(ARABIC_INDIC), MOBILE), ("电话幺三九 幺两三四 五六拐八", MOBILE),
    ("电话１３９－１２３４－５６７８", MOBILE), ("电话139一二三四5678", MOBILE),
    ("电话壹叁玖，壹贰叁肆，伍陆柒捌", MOBILE), ("手机①③⑨①②③④⑤⑥⑦⑧", MOBILE),
    ("手机𝟏𝟑𝟗𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", MOBILE), ("号码是 +86 139 1234 5678", MOBILE), ("号码8613912345678", MOBILE),
    # mobiles: dictated with pauses and fillers, split across turns
    ("我号码幺三九，一二三四，五六七八", MOBILE), ("我号码一三九……一二三四……五六七八", MOBILE),
    ("我号码139嗯1234嗯5678", MOBILE), ("我号码139，呃，1234，5678", MOBILE), ("我号码139然后1234然后5678", MOBILE),
    ("我号码一三九、一二三四、五六七八", MOBILE), ("我号码139。1234。5678", MOBILE),
    ("市民：139 坐席：嗯 市民：1234 5678", MOBILE), ("市民：139 坐席：嗯 市民：1234 坐席：好 市民：5678", MOBILE),
    ("来电人：一三九 客服：您说 来电人：一二三四五六七八", MOBILE), ("市民:139 坐席:请讲 市民:12345678", MOBILE),
    ("说话人1：139 说话人2：嗯 说话人1：1234 5678", MOBILE), ("市民：139\n坐席：嗯\n市民：1234\n5678", MOBILE),
    ("市民：幺三九 坐席：嗯嗯 市民：幺两三四 坐席：好的 市民：五六拐八", MOBILE),
    # ID numbers: 18 and 15 digits, in groups
    (f"身份证{ID18}", ID18), (f"身份证{ID18[:6]} {ID18[6:14]} {ID18[14:]}", ID18),
    (f"身份证{ID18[:6]}-{ID18[6:14]}-{ID18[14:]}", ID18), (f"身份证{ID18[:3]} {ID18[3:6]} {ID18[6:10]} {ID18[10:14]} {ID18[14:]}", ID18),
    (f"身份证{ID18.translate(FULLWIDTH)}", ID18), (f"身份证{ID18.translate(CHINESE)}", ID18),
    (f"身份证{' '.join(ID18)}", ID18), (f"身份证号码是{ID18[:6]}，{ID18[6:14]}，{ID18[14:]}", ID18),
    (f"证件号{ID18[:6]}\u200b{ID18[6:]}", ID18), (f"身份证{ID15}", ID15), (f"老身份证{ID15[:6]} {ID15[6:12]} {ID15[12:]}", ID15),
    (f"身份证{ID15[:6]}-{ID15[6:]}", ID15), (f"身份证{ID15.translate(CHINESE)}", ID15),
    (f"市民：{ID18[:6]} 坐席：嗯 市民：{ID18[6:]}", ID18),
    # bank cards in groups of four
    (f"卡号{CARD}", CARD), (f"卡号{CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:16]} {CARD[16:]}", CARD),
    (f"卡号{CARD[:4]}-{CARD[4:8]}-{CARD[8:12]}-{CARD[12:16]}-{CARD[16:]}", CARD),
    (f"银行卡{CARD.translate(FULLWIDTH)}", CARD), (f"银行卡{CARD.translate(CHINESE)}", CARD),
    ("卡号4111 1111 1111 1111", "4111111111111111"), ("卡号 5500-0000-0000-0004", "5500000000000004"),
    (f"工资卡是{CARD[:4]}，{CARD[4:8]}，{CARD[8:12]}，{CARD[12:16]}，{CARD[16:]}", CARD),
    # landlines with area codes in any grouping
    ("座机0523-86881234", LANDLINE), ("座机0523 8688 1234", LANDLINE), ("座机(0523)86881234", LANDLINE),
    ("座机（0523）8688-1234", LANDLINE), ("座机0523—86881234", LANDLINE), ("座机052386881234", LANDLINE),
    ("座机0523 868 81234", LANDLINE), ("座机零五二三八六八八一二三四", LANDLINE), ("座机0523.8688.1234", LANDLINE),
    ("座机０５２３－８６８８１２３４", LANDLINE), ("电话010-6552 9988", "01065529988"), ("电话(010)65529988", "01065529988"),
    ("打8688 1234找我", "86881234"), ("电话8688-1234", "86881234"),
]

# (text, names that must not survive)
NAME_LEAKS: list[tuple[str, str]] = [
    ("我叫王小明，住在城东", "王小明"), ("我是张伟，住在海陵", "张伟"), ("我是李明的家属", "李明"),
    ("姓名：李四，电话", "李四"), ("姓名:王五", "王五"), ("本人张三丰，反映", "张三丰"), ("本人姓名赵六", "赵六"),
    ("你们叫我小王就行", "小王"), ("我姓王叫王小明", "王小明"), ("我姓张，名伟，电话", "伟"),
    ("物业张伟先生说不管", "张伟"), ("找一下王先生", "王"), ("刘女士反映", "刘"), ("陈师傅来修过", "陈"),
    ("欧阳娜娜女士", "欧阳娜娜"), ("我叫 张 三", "张三"), ("我叫张\u200b三", "张三"), ("联系人：孙七", "孙七"),
]

# Texts that must come out exactly as they went in: order numbers, dates, amounts, addresses, roles.
SURVIVES = [
    "订单号2023120134567890123，一直没发货", "订单号2023-1201-3456-7890", "快递单号 7788 1234 5678 9012 已签收",
    "发票号码 04412345678901234567", "工单编号TZ2025060100001", "2025-06-01 13:45 来电", "2025年6月1日下午3点",
    "2025/06/01", "2025.06.01到2025.06.30", "金额1,234.50元", "欠了8000元", "一共12,345,678元的工程款",
    "门牌123号", "3栋2单元1301室", "海陵区城东街道梅兰新村12幢3单元502", "36路公交", "12345热线",
    "我是周边居民", "我是高中生。", "我是业主", "本人在海陵区住", "班主任老师不管", "高中老师", "数学老师",
    "花了两三千块钱", "十三号楼", "二〇二五年六月一日", "第1,2,3条", "温度38.5度", "面积120平方米",
    "价格从15.8涨到19.9", "2024年1-12月", "电费1,234元，水费567元", "邮编225300", "身高175体重70",
    "号码为2019-6-12办理", "本人陈述的事件属实", "开裂房号：1-1-1101、1-1-2001、1-1-1803、1-1-1703、1-3-2301",
    "一期1-23-1-602/1-23-1-202/1-23-1-502/1-23-1-601", "考生分数为78.16、79.00、79.17、71.57、75.63",
]


@pytest.mark.parametrize(("text", "secret"), LEAKS)
def test_numbers_in_every_shape_are_masked(text: str, secret: str) -> None:
    masked = pii.mask(text)
    assert secret not in digits_of(masked), masked
    assert pii.mask(masked) == masked


@pytest.mark.parametrize(("text", "name"), NAME_LEAKS)
def test_names_in_every_shape_are_masked(text: str, name: str) -> None:
    masked = pii.mask(text)
    assert name not in pii.view(masked).text, masked


@pytest.mark.parametrize("text", SURVIVES)
def test_what_is_not_personal_survives(text: str) -> None:
    assert pii.mask(text) == text


def test_the_table_is_large_enough() -> None:
    assert len(LEAKS) + len(NAME_LEAKS) >= 100 and len(SURVIVES) >= 30


def test_masks_keep_the_separators_and_the_usual_visible_digits() -> None:
    assert pii.mask("电话139 1234 5678。") == "电话139 **** 5678。"
    assert pii.mask("市民：139 坐席：嗯 市民：1234 5678") == "市民：139 坐席：嗯 市民：**** 5678"
    assert pii.mask(f"身份证{ID18[:6]} {ID18[6:14]} {ID18[14:]}") == f"身份证{ID18[:6]} ******** {ID18[14:]}"
    assert pii.mask("卡号4111 1111 1111 1111") == "卡号**** **** **** 1111"


# ---------------------------------------------------------------- generated families
SEPARATORS = [" ", "-", "—", "–", "－", "‐", ".", ",", "，", "/", "_", "、", "\u3000", "\u00a0", " - ", "……", "，呃，"]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202a", "\u202c", "\u202e", "\u00ad", "\u200e"]
FORMS = [str.maketrans("", ""), FULLWIDTH, CHINESE, FINANCIAL, RADIO, ARABIC_INDIC]
NOISE = st.text(alphabet=st.sampled_from(list("我的电话是号码身份证住在海陵区，。反映问题停水了")), max_size=12)


@st.composite
def spoken(draw: st.DrawFn, digits: str) -> str:
    """``digits`` split into random groups, joined by random separators, in a random digit form, with invisibles."""
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=len(digits) - 1)))
    groups = [digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=False)]
    form = draw(st.sampled_from(FORMS))
    parts = []
    for i, group in enumerate(groups):
        parts.append(group.translate(form))
        if i < len(groups) - 1:
            parts.append(draw(st.sampled_from(SEPARATORS)))
            if draw(st.booleans()):
                parts.append(draw(st.sampled_from(INVISIBLE)))
    return "".join(parts)


mobiles = st.builds(lambda p, rest: p + rest, st.sampled_from(["13", "15", "17", "18", "19"]),
                    st.text("0123456789", min_size=9, max_size=9))
ids = st.builds(make_id, st.builds(lambda region, year, month, day, seq: f"{region}{year}{month:02d}{day:02d}{seq}",
                                   st.sampled_from(["321202", "320102", "110105", "440305"]),
                                   st.integers(1930, 2020), st.integers(1, 12), st.integers(1, 28),
                                   st.text("0123456789", min_size=3, max_size=3)))
cards = st.builds(make_card, st.builds(lambda rest: "6217" + rest, st.text("0123456789", min_size=14, max_size=14)))
landlines = st.builds(lambda area, number: area + number, st.sampled_from(["0523", "025", "010", "0512"]),
                      st.builds(lambda first, rest: first + rest, st.sampled_from("2345678"),
                                st.text("0123456789", min_size=7, max_size=7)))


@settings(max_examples=300, deadline=None)
@given(st.one_of(mobiles, ids, cards, landlines).flatmap(lambda d: st.tuples(st.just(d), spoken(d))), NOISE, NOISE)
def test_generated_numbers_never_survive(secret: tuple[str, str], before: str, after: str) -> None:
    digits, written = secret
    masked = pii.mask(f"{before}电话{written}{after}")
    assert digits not in digits_of(masked), masked


@settings(max_examples=150, deadline=None)
@given(mobiles, st.sampled_from(["坐席：嗯", "坐席：好的", "客服：您说", "坐席：嗯嗯，请讲"]), st.integers(1, 10))
def test_mobiles_split_across_turns_never_survive(number: str, reply: str, cut: int) -> None:
    text = f"市民：我电话是{number[:cut]} {reply} 市民：{number[cut:]}"
    assert number not in digits_of(pii.mask(text))


def test_every_stored_field_and_the_index_tokens_are_masked(builder, store) -> None:
    """A case whose every field carries a secret in another shape: none survives in any column of the store."""
    from hotline.ingest import ColumnMap

    values = {
        "id": "PII-1", "received_at": "2025-06-01 10:00:00",
        "transcript": "坐席：您好。市民：我叫张伟，电话139 坐席：嗯 市民：1234 5678，楼下停水了",
        "title": f"身份证{ID18[:6]} {ID18[6:14]} {ID18[14:]}的问题",
        "address": "海陵区城东街道，座机(0523)8688-1234", "caller": "壹叁玖壹贰叁肆伍陆柒捌",
    }
    case = builder.build(values, ColumnMap().resolve(list(values)))
    store.upsert([case])
    row = store.read("SELECT title, text, transcript, caller, address, tokens FROM cases WHERE id = 'PII-1'")[0]
    shown = "".join(digits_of(field) for field in row)
    for secret in (MOBILE, ID18, LANDLINE):
        assert secret not in shown, row
    assert "张伟" not in "".join(row)
    assert "停水" in row[1] and "海陵区" in row[4]


# ---------------------------------------------------------------- round 3: fail closed, new kinds, names
# (text, what must not survive: digits are compared with every digit form read as ASCII, names as written)
ROUND3_LEAKS: list[tuple[str, str]] = [
    # fillers, spoken dashes and dots, quantities, letters for digits, labels of the groups
    ("我电话139啊1234啊5678", MOBILE), ("号码是一三九呃一二三四呃五六七八", MOBILE),
    ("幺三九杠一二三四杠五六七八", MOBILE), ("一三九点一二三四点五六七八", MOBILE),
    ("我的号是一三九四个八五六七八", "13988885678"), ("尾号三个零", "000"),  # the second: too short to matter
    ("电话139O1234O567", "13901234056"), ("手机13912345678 是O不是0", MOBILE),
    ("前三位139，中间四位1234，后四位5678", MOBILE), ("开头是139，中间1234，最后是5678", MOBILE),
    ("139然后是1234再然后是5678", MOBILE), ("市民：139 坐席：嗯您说 市民：1234 坐席：嗯 市民：5678", MOBILE),
    # the agent reads the groups back between the caller's
    ("市民：139 1234 坐席：139 1234 对吗 市民：对 5678", MOBILE),
    ("坐席：请问您的联系电话？市民：13912345678", MOBILE), ("坐席：您的电话是139 1234 5678吗？市民：对", MOBILE),
    # an unknown long number is masked whole
    ("我的编码是 4402 1987 66", "4402198766"), ("你记一下 8866 2211 9", "886622119"),
    ("市民：一二三四五六七", "1234567"), ("那个号 5 5 6 6 7 7 8 8", "55667788"),
    # QQ, WeChat, passports and permits
    ("我QQ是12345678", "12345678"), ("扣扣号 987654", "987654"), ("qq：30748522", "30748522"),
    ("微信号abc_123", "abc_123"), ("加我微信 zhangsan_88", "zhangsan_88"), ("wxid_a1b2c3d4e5", "wxid_a1b2c3d4e5"),
    ("护照号E12345678", "E12345678"), ("港澳通行证C12345678", "C12345678"), ("台胞证号码是H0123456789", "H0123456789"),
    # e-mails spelled out
    ("邮箱zhangsan a t qq 点com", "zhangsan"), ("邮箱 lisi艾特163点com", "lisi"), ("wang.wu（at）126.com", "wang.wu"),
    ("邮件发到 zhaoliu at sina dot com", "zhaoliu"), ("邮箱 qianqi@foxmail.com", "qianqi"),
    # plates in numerals or with commas
    ("车牌苏M一二三四五", "12345"), ("车牌苏M，1，2，3，4，5", "12345"), ("车牌号苏M 12345", "12345"),
    # names after relations and greetings, 名叫, a surname after the question, compound and Latin names
    ("我老公张建国昨天打过", "张建国"), ("我家孩子叫李小明", "李小明"), ("我爱人王秀英在家", "王秀英"),
    ("我儿子刘洋在上学", "刘洋"), ("这边是刘芳，反映一个事", "刘芳"), ("有个人名叫赵大海", "赵大海"),
    ("坐席：您贵姓？市民：姓王", "王"), ("坐席：请问您怎么称呼？市民：免贵姓欧阳", "欧阳"), ("诸葛老师不管", "诸葛"),
    ("姓名：ZhangSan", "ZhangSan"), ("姓名：Zhang San，电话", "Zhang"), ("代表：王丹叶0523-86881234", "王丹叶"),
    ("敬礼！周林飞电话13912345678", "周林飞"), ("我老婆，王秀英，她", "王秀英"),
]

ROUND3_SURVIVES = [
    "2025年6月1日下午3点20分来电", "上午9:30到11:00停水", "2019-05-18 14:30:00", "交了1,234.50元押金",
    "一共欠了38000元工资", "订单号 2023 1201 3456 7890", "快递单号SF1234567890123", "案件编号2025-0601-0001",
    "328国道边上", "S229省道", "G2京沪高速", "3栋2单元1301室", "小区有1200户、3500人", "面积86.5平方米",
    "张某某反映", "王某说不管", "历史老师不管", "宿管阿姨不让进", "这边是高新区的居民", "我是周一来过的",
    "联系了三次，赔偿20000元", "12345热线", "打了110和12345", "考生分数为78.16、79.00、79.17",
    "1987一1995年在厂里", "2014-2015学年", "第1、2、3条", "36路和K12路公交",
]


@pytest.mark.parametrize(("text", "secret"), ROUND3_LEAKS)
def test_round3_variants_are_masked(text: str, secret: str) -> None:
    masked = pii.mask(text)
    if secret.isdigit():
        assert len(secret) < 7 or secret not in digits_of(masked), masked
    else:
        assert secret not in pii.view(masked).text and secret.replace(" ", "") not in masked, masked
    assert pii.mask(masked) == masked


@pytest.mark.parametrize("text", ROUND3_SURVIVES)
def test_round3_what_must_stay_stays(text: str) -> None:
    assert pii.mask(text) == text


def test_unknown_numbers_are_masked_whole_and_known_ones_keep_the_policy() -> None:
    assert pii.mask("我的编码是 4402 1987 66") == "我的编码是 **** **** **"
    assert pii.mask("电话139 1234 5678") == "电话139 **** 5678"
    assert pii.mask(f"身份证{ID18}") == f"身份证{ID18[:6]}********{ID18[-4:]}"
    assert pii.mask("前三位139，中间四位1234，后四位5678") == "前三位139，中间四位****，后四位5678"


def test_masking_before_clean_up_keeps_what_the_clean_up_would_break() -> None:
    """Collapsing 八八八 to 八 left 一三八一二三四五 (eight digits) for the masker; now the raw is masked first."""
    from classifiers.dataset import prepare_text
    from hotline.text import transcript

    raw = "坐席：请问您的联系电话？\n市民：一三八八八八一二三四五六\n坐席：一三八八八八一二三四五六对吗\n市民：对，路灯坏了"
    account = prepare_text(raw)
    assert "路灯坏了" in account and "138888" not in digits_of(account) and "123456" not in digits_of(account)
    parsed, stored = transcript.masked(raw, pii.mask)
    assert "13888812345" not in digits_of(stored) and "123456" not in digits_of(stored)  # the read-back too
    asr = '[{"speaker": "A", "text": "请问您的电话？", "bg": 1200, "ed": 2400}, {"speaker": "B", "text": "139", "bg": 2500, "ed": 3100}, {"speaker": "B", "text": "1234 5678", "bg": 3200, "ed": 5300}]'
    parsed, stored = transcript.masked(asr, pii.mask)
    assert "12345678" not in digits_of(stored) and '"bg": 3200' in stored  # the times stay numbers


def test_mask_command_masks_the_whole_input_not_line_by_line(tmp_path) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "hotline.cli", "mask"], input="市民：139\n坐席：嗯\n市民：1234\n5678\n",
                          capture_output=True, text=True, cwd=tmp_path, check=True)
    assert MOBILE not in digits_of(done.stdout) and "1234" not in done.stdout


def test_caller_fields_hide_names_and_account_ids_entirely() -> None:
    from hotline.ingest import mask_caller

    assert mask_caller("张三 13912345678") == "** 139****5678"
    assert "张" not in mask_caller("张三13912345678") and "5678" in mask_caller("张三13912345678")
    assert not re.search(r"[0-9A-Za-z\u4e00-\u9fff]", mask_caller("QQ 123456").replace("*", ""))
    assert "abc" not in mask_caller("微信 abc_123") and "123" not in mask_caller("微信 abc_123")


def test_case_ids_with_a_phone_number_are_refused() -> None:
    from hotline.case import check_id
    from hotline.errors import InvalidInput

    for bad in ("C13912345678", "case-139-1234-5678", f"ID{ID18}"):
        with pytest.raises(InvalidInput):
            check_id(bad)
    for good in ("TZ202506010001", "H3f9a", "PII-1", "TZ202612043f1000001"):
        assert check_id(good) == good
