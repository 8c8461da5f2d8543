from datetime import datetime

import pytest

from hotline.case import Case, Category, Channel, LabelKind, LabelSource, Location, Status
from hotline.errors import InvalidInput


def test_category_paths_parse_with_any_common_separator() -> None:
    assert Category.parse("城乡建设/供水/停水") == Category("城乡建设", "供水", "停水")
    assert Category.parse("城乡建设 > 供水") == Category("城乡建设", "供水")
    assert Category.parse("环境保护").path == "环境保护"


@pytest.mark.parametrize("bad", ["", "a/b/c/d", " / "])
def test_bad_category_paths_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        Category.parse(bad)


def test_category_levels_fill_from_the_top() -> None:
    with pytest.raises(InvalidInput):
        Category("城乡建设", "", "停水")


@pytest.mark.parametrize(("raw", "channel"), [("电话", Channel.PHONE), ("微信", Channel.WECHAT), ("web", Channel.WEB), ("", Channel.PHONE), ("APP", Channel.APP)])
def test_channels_accept_chinese_and_english_names(raw: str, channel: Channel) -> None:
    assert Channel.parse(raw) is channel


def test_unknown_channel_and_status_are_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown channel"):
        Channel.parse("信鸽")
    with pytest.raises(InvalidInput, match="unknown status"):
        Status.parse("whatever")
    assert Status.parse("已办结") is Status.RESOLVED


def test_a_case_needs_an_id_text_and_label_provenance() -> None:
    now = datetime(2025, 1, 1, 9)
    with pytest.raises(InvalidInput):
        Case(id="", received_at=now, text="停水了")
    with pytest.raises(InvalidInput):
        Case(id="1", received_at=now, text="  ")
    with pytest.raises(InvalidInput, match="label source"):
        Case(id="1", received_at=now, text="停水了", category=Category("城乡建设", "供水"))


def test_with_label_records_who_labelled() -> None:
    case = Case(id="1", received_at=datetime(2025, 1, 1), text="停水了")
    agent = LabelSource(LabelKind.CONFIRMED, "agent-007", datetime(2025, 1, 2))
    labelled = case.with_label(agent, category=Category("城乡建设", "供水"), departments=("自来水公司",))
    assert labelled.category_source == agent and labelled.departments_source == agent
    assert labelled.category_source.is_truth
    assert not LabelSource(LabelKind.PREDICTED, "linear-v1").is_truth
    assert case.category is None  # the original is untouched


def test_coordinates_are_checked() -> None:
    with pytest.raises(InvalidInput):
        Location(120.0, 32.0)
