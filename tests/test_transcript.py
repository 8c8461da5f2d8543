from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.errors import InvalidInput
from hotline.text import transcript
from hotline.text.transcript import Speaker

DIALOGUE = """坐席：您好，12345政务服务热线，请问有什么可以帮您？
市民：喂，你好，嗯，那个，我要反映一下，我们小区停水停水了，停水了三天了。
坐席：请问具体地址？
市民：海陵区城东街道梅兰新村。
坐席：好的，我们会尽快转交相关部门处理。
市民：谢谢，再见"""


def test_tagged_dialogue_keeps_only_what_the_caller_said_about_the_problem() -> None:
    parsed = transcript.parse(DIALOGUE)
    assert parsed.form == "dialogue"
    assert [t.speaker for t in parsed.turns][:2] == [Speaker.AGENT, Speaker.CALLER]
    account = parsed.caller_account()
    assert account == "我要反映一下，我们小区停水了，停水了三天了。海陵区城东街道梅兰新村"
    assert "12345" not in account and "谢谢" not in account and "嗯" not in account


def test_inline_tags_and_other_role_names() -> None:
    text = "话务员：您好，请讲。 来电人：我我我想问一下低保怎么申请 话务员：好的"
    assert transcript.caller_account(text) == "我想问一下低保怎么申请"


def test_numbered_speakers_are_told_apart_by_what_agents_say() -> None:
    text = "说话人2：您好，12345热线，请问有什么可以帮您？\n说话人1：楼下烧烤店油烟太大了\n说话人2：请问具体位置？\n说话人1：凤凰路88号"
    parsed = transcript.parse(text)
    assert [t.speaker for t in parsed.turns] == [Speaker.AGENT, Speaker.CALLER, Speaker.AGENT, Speaker.CALLER]
    assert parsed.caller_account() == "楼下烧烤店油烟太大了。凤凰路88号"


def test_timestamps_before_tags_are_dropped() -> None:
    text = "[00:01] 坐席：您好\n[00:03] 市民：路灯不亮了"
    assert transcript.caller_account(text) == "路灯不亮了"


@pytest.mark.parametrize("speakers", [("agent", "customer"), ("0", "1"), (0, 1)])
def test_asr_json_segments(speakers: tuple) -> None:
    agent, caller = speakers
    data = {"segments": [
        {"speaker": agent, "start": 0.0, "end": 2.1, "text": "您好，12345热线，请问有什么可以帮您"},
        {"speaker": caller, "start": 2.5, "end": 6.0, "text": "嗯，我们这边井盖没了"},
        {"speaker": caller, "start": 6.0, "end": 8.0, "text": "我们这边井盖没了"},
    ]}
    parsed = transcript.parse(json.dumps(data, ensure_ascii=False))
    assert parsed.form == "asr-json"
    assert parsed.turns[1].start == 2.5 and parsed.turns[1].speaker is Speaker.CALLER
    assert parsed.caller_account() == "我们这边井盖没了"


def test_asr_json_in_milliseconds_and_other_keys() -> None:
    data = {"result": {"sentences": [{"role": "坐席", "bg": 0, "ed": 1500, "onebest": "您好"},
                                      {"role": "市民", "bg": 1600, "ed": 40000, "onebest": "噪音太大"}]}}
    parsed = transcript.parse(json.dumps(data, ensure_ascii=False))
    assert parsed.turns[1].end == 40.0 and parsed.caller_account() == "噪音太大"


def test_written_message_is_the_account_itself() -> None:
    parsed = transcript.parse("尊敬的领导：您好！小区门口垃圾堆了一个礼拜没人清。")
    assert parsed.form == "message"
    assert "垃圾堆了一个礼拜没人清" in parsed.caller_account()


def test_reduplicated_words_and_numbers_survive_cleaning() -> None:
    assert transcript.clean_utterance("妈妈说欠了8888元，天天加班") == "妈妈说欠了8888元，天天加班"
    assert transcript.clean_utterance("金额不对") == "金额不对"


@pytest.mark.parametrize("bad", ["", "   ", '{"segments": []}', '{"segments": [{"text": ""}]}', '{"foo": 1}'])
def test_empty_or_textless_transcripts_are_clear_errors(bad: str) -> None:
    with pytest.raises(InvalidInput):
        transcript.parse(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        parsed = transcript.parse(text)
    except InvalidInput:
        return
    assert isinstance(parsed.caller_account(), str)
