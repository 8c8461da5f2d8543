"""Call transcripts: from an agent/caller dialogue to the caller's account.

Hotline recordings reach us in a few shapes: speaker-tagged lines
(``坐席：… 市民：…``, ``来电人：``, ``[agent]``, ``说话人1：``), the same tags
run together on one line, and ASR JSON with segments, speakers and times. A
written message (web, app, WeChat) has no tags and is the caller's account as
it stands. The account keeps what the caller said about the problem, and drops
greetings, fillers (嗯、啊、那个) and the fragments ASR repeats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from hotline.errors import InvalidInput
from hotline.text.clean import normalize


class Speaker(StrEnum):
    AGENT = "agent"
    CALLER = "caller"


@dataclass(frozen=True, slots=True)
class Turn:
    """One utterance; ``start``/``end`` in seconds when the source had them."""

    speaker: Speaker
    text: str
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Transcript:
    """A parsed transcript; ``form`` is ``dialogue``, ``asr-json`` or ``message``."""

    turns: tuple[Turn, ...]
    form: str

    def caller_account(self) -> str:
        """The caller's turns, cleaned, as one text."""
        parts = (clean_utterance(t.text) for t in self.turns if t.speaker is Speaker.CALLER)
        return _dedupe_clauses("。".join(p for p in parts if p))


_AGENT_TAGS = ("坐席", "话务员", "接线员", "客服", "工作人员", "热线", "agent", "operator", "AGENT")
_CALLER_TAGS = ("市民", "来电人", "来电者", "来电", "群众", "用户", "客户", "居民", "caller", "customer", "CALLER")
_NUMBERED_TAG = r"(?:说话人|发言人|角色|Speaker|speaker|SPK|spk)\s*[0-9A-Za-z]{1,2}"
_TAG = re.compile(
    r"(?:^|(?<=[\s。！？!?.，,]))[\[【(（<]?\s*(?P<tag>"
    + "|".join(map(re.escape, sorted(_AGENT_TAGS + _CALLER_TAGS, key=len, reverse=True)))
    + "|"
    + _NUMBERED_TAG
    + r"|(?<![^\n])[AB])\s*[\]】)）>]?\s*[:：]",
    re.MULTILINE,
)
_TIMESTAMP = re.compile(r"^\s*\[?\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\]?\s*", re.MULTILINE)

_AGENT_CUES = (
    "12345", "有什么可以帮", "请问", "为您服务", "工号", "您反映的", "我们会", "请您", "稍后",
    "感谢您的来电", "您说的是", "帮您", "给您", "转交", "核实", "您好", "热线",
)

_GREETING_CLAUSE = re.compile(
    r"^(喂+|你好|您好|哎|诶|喂你好|你好啊|您好啊|谢谢|谢谢你|谢谢您|好的|好|嗯+|对|对的|是的|是|没有了|没了|"
    r"就这些|就这个事|再见|拜拜|行|可以|麻烦了|麻烦你了|麻烦您了|不客气)[啊呀吧的了]*$"
)
_FILLERS = re.compile(r"[嗯呃]+|(?:^|(?<=[，。？！,]))(?:啊|额|哦|唉|那个|这个|就是说|然后呢|怎么说呢)+|(?:啊|额|哦)+(?=[，。？！,]|$)")
_REPEATED_WORD = re.compile(r"([\u4e00-\u9fff]{2,12}?)\1+")
_REPEATED_CHAR = re.compile(r"([\u4e00-\u9fff])\1{2,}")
_CLAUSE_SPLIT = re.compile(r"([，。？！；,;?!\n])")


def clean_utterance(text: str) -> str:
    """One utterance without greetings, fillers and repeated ASR fragments."""
    clauses = []
    for clause in _CLAUSE_SPLIT.split(normalize(text)):
        if not clause or _CLAUSE_SPLIT.fullmatch(clause):
            continue
        clause = clause.strip()
        clause = _FILLERS.sub("", clause).strip(" ，,")
        clause = _REPEATED_CHAR.sub(r"\1", clause)
        clause = _REPEATED_WORD.sub(r"\1", clause)
        if clause and not _GREETING_CLAUSE.match(clause):
            clauses.append(clause)
    return _dedupe_clauses("，".join(clauses))


def _dedupe_clauses(text: str) -> str:
    """Drop a clause that repeats the one before it (ASR re-sends a whole segment)."""
    pieces = _CLAUSE_SPLIT.split(text)
    out: list[tuple[str, str]] = []
    for i in range(0, len(pieces), 2):
        clause = pieces[i]
        sep = pieces[i + 1] if i + 1 < len(pieces) else ""
        if clause and out and clause == out[-1][0]:
            out[-1] = (clause, sep)
            continue
        out.append((clause, sep))
    return "".join(c + s for c, s in out).strip("，,")


def parse(raw: str) -> Transcript:
    """Parse any supported form; raises :class:`InvalidInput` when there is no text at all."""
    if raw is None or not str(raw).strip():
        raise InvalidInput("transcript is empty")
    text = str(raw).strip()
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if data is not None:
            return _from_asr_json(data)
    return _from_text(text)


def caller_account(raw: str) -> str:
    """Shortcut for ``parse(raw).caller_account()``."""
    return parse(raw).caller_account()


_LABELS = {Speaker.AGENT: "坐席：", Speaker.CALLER: "市民："}


def masked(raw: str, mask: Callable[[str], str]) -> tuple[Transcript, str]:
    """The transcript parsed with ``mask`` applied first, across the whole dialogue, and the raw text masked.

    Masking comes before the clean-up (collapsing repeated characters and ASR
    fragments turned a dictated card or ID into something the masker no longer
    recognised), and sees every turn: the agent's cue (请问您的电话？) and the
    agent reading the groups back belong to the caller's number. A dialogue is
    masked as it came; an ASR JSON's texts are masked as one dialogue and put
    back in their segments, so that its times stay numbers.
    """
    parsed = parse(raw)
    if parsed.form != "asr-json":
        masked_raw = mask(str(raw).strip())
        return parse(masked_raw), masked_raw
    dialogue = "\n".join(_LABELS[t.speaker] + t.text.replace("\n", " ") for t in parsed.turns)
    lines = mask(dialogue).split("\n")
    if len(lines) == len(parsed.turns) and all(
        line.startswith(_LABELS[t.speaker]) for line, t in zip(lines, parsed.turns, strict=True)
    ):
        texts = [line[3:] for line in lines]
    else:  # a mask that spanned a line break: each turn on its own, then the whole again
        texts = [mask(t.text) for t in parsed.turns]
    turns = tuple(replace(t, text=text) for t, text in zip(parsed.turns, texts, strict=True))
    by_text = {t.text: text for t, text in zip(parsed.turns, texts, strict=True)}

    def walk(node: object) -> object:
        if isinstance(node, str):
            return by_text.get(normalize(node).strip(), None) or mask(node)
        if isinstance(node, list):
            return [walk(item) for item in node]
        if isinstance(node, dict):
            return {key: walk(value) for key, value in node.items()}
        return node

    masked_raw = json.dumps(walk(json.loads(str(raw).strip())), ensure_ascii=False)
    return Transcript(turns, parsed.form), masked_raw


def _from_text(text: str) -> Transcript:
    text = _TIMESTAMP.sub("", normalize(text))
    matches = list(_TAG.finditer(text))
    if not matches:
        return Transcript((Turn(Speaker.CALLER, text),), "message")
    labelled: list[tuple[str, str]] = []
    head = text[: matches[0].start()].strip()
    if head:
        labelled.append(("", head))
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[match.end() : end].strip()
        if body:
            labelled.append((match.group("tag"), body))
    roles = _assign_roles([tag for tag, _ in labelled], [body for _, body in labelled])
    turns = tuple(Turn(roles[tag], body) for tag, body in labelled)
    return Transcript(turns, "dialogue")


def _role_of_tag(tag: Any) -> Speaker | None:
    name = str(tag).strip()
    if name in _AGENT_TAGS or name.lower() in ("agent", "operator", "staff", "seat"):
        return Speaker.AGENT
    if name in _CALLER_TAGS or name.lower() in ("caller", "customer", "user", "client"):
        return Speaker.CALLER
    return None


def _assign_roles(tags: list[Any], bodies: list[str]) -> dict[Any, Speaker]:
    """Known tags map directly; numbered speakers are told apart by what agents say."""
    roles: dict[Any, Speaker] = {}
    unknown: list[Any] = []
    for tag in tags:
        if tag in roles or tag in unknown:
            continue
        role = _role_of_tag(tag)
        if role is None:
            unknown.append(tag)
        else:
            roles[tag] = role
    if unknown:
        if Speaker.AGENT in roles.values():
            roles.update(dict.fromkeys(unknown, Speaker.CALLER))
        else:
            score = dict.fromkeys(unknown, 0)
            for tag, body in zip(tags, bodies, strict=True):
                if tag in score:
                    score[tag] += sum(cue in body for cue in _AGENT_CUES)
            agent = max(unknown, key=lambda t: (score[t], -unknown.index(t)))
            if len(unknown) == 1 and Speaker.CALLER not in roles.values() and score[agent] == 0:
                agent = None
            roles.update({tag: Speaker.AGENT if tag == agent else Speaker.CALLER for tag in unknown})
    return roles


_SEGMENT_LISTS = ("segments", "sentences", "utterances", "results", "result", "transcript", "data")
_TEXT_KEYS = ("text", "content", "onebest", "sentence", "transcript", "words")
_SPEAKER_KEYS = ("speaker", "role", "spk", "speaker_id", "channel", "channel_id", "spk_id")
_START_KEYS = ("start", "begin", "start_time", "bg", "begin_time", "startTime")
_END_KEYS = ("end", "stop", "end_time", "ed", "endTime")


def _segments_of(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, list):
        return [seg for seg in data if isinstance(seg, dict)]
    if isinstance(data, dict):
        for key in _SEGMENT_LISTS:
            if key in data:
                found = _segments_of(data[key])
                if found:
                    return found
    raise InvalidInput("ASR JSON has no list of segments (expected keys like 'segments' with 'text')")


def _first(seg: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in seg and seg[key] is not None:
            return seg[key]
    return None


def _seconds(value: Any, in_ms: bool) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 1000.0 if in_ms else number


def _from_asr_json(data: Any) -> Transcript:
    segments = _segments_of(data)
    texts = [str(_first(seg, _TEXT_KEYS) or "").strip() for seg in segments]
    tags = [_first(seg, _SPEAKER_KEYS) for seg in segments]
    tags = ["" if tag is None else str(tag) for tag in tags]
    ends = [_first(seg, _END_KEYS) for seg in segments]
    in_ms = any(isinstance(e, int) and e > 36_000 for e in ends) or any(k in seg for seg in segments for k in ("bg", "ed"))
    kept = [(i, t) for i, t in enumerate(texts) if t]
    if not kept:
        raise InvalidInput("ASR JSON segments contain no text")
    if all(tag == "" for tag in tags):
        roles: dict[Any, Speaker] = {"": Speaker.CALLER}
    else:
        roles = _assign_roles([tags[i] for i, _ in kept], [t for _, t in kept])
    turns = tuple(
        Turn(
            roles.get(tags[i], Speaker.CALLER),
            normalize(text),
            _seconds(_first(segments[i], _START_KEYS), in_ms),
            _seconds(ends[i], in_ms),
        )
        for i, text in kept
    )
    return Transcript(turns, "asr-json")
