from __future__ import annotations

import pytest

from hotline.text.segment import Segmenter, default_segmenter, read_user_dict

SENTENCES = [
    "我住在海陵区城东街道梅兰新村，小区停水三天了，物业不管，打12345反映",
    "姜堰区溱潼镇有人焚烧秸秆，烟太大了，请生态环境局处理",
    "公司拖欠农民工工资八千多块钱，希望劳动监察帮忙讨薪",
    "不动产登记中心说材料不全，房产证一直办不下来",
]


def test_place_and_government_terms_stay_whole() -> None:
    tokens = default_segmenter().tokens(SENTENCES[0])
    for word in ("海陵区", "城东街道", "梅兰新村", "停水", "12345"):
        assert word in tokens
    assert "不动产登记中心" in default_segmenter().tokens(SENTENCES[3])


@pytest.mark.parametrize("sentence", SENTENCES)
def test_rjieba_gives_the_same_tokens_as_jieba(sentence: str) -> None:
    assert default_segmenter("rjieba").cut(sentence) == default_segmenter("jieba").cut(sentence)


def test_tokens_drop_punctuation_and_lowercase() -> None:
    assert default_segmenter().tokens("HPV疫苗，怎么预约？") == ["hpv", "疫苗", "怎么", "预约"]


def test_user_dict_format() -> None:
    assert read_user_dict("# comment\n停水 3000 v\n网格员\n\n") == [("停水", 3000), ("网格员", 3000)]


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown segmenter"):
        Segmenter(backend="pkuseg")


def test_rjieba_reproduces_jieba_on_real_messages() -> None:
    """The index and the models may use either backend: they must agree on real text."""
    import csv

    from conftest import SHARED_DATA

    path = SHARED_DATA / "tipdm2020c" / "messages_timed.csv"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][:1500]
    fast, reference = default_segmenter("rjieba"), default_segmenter("jieba")
    same_docs = sum(fast.cut(t) == reference.cut(t) for t in texts)
    assert same_docs / len(texts) >= 0.98
