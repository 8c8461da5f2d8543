"""Realistic synthetic 12345 calls for a city, with ground truth for what matters.

Volume follows the rhythms a hotline sees: weekday/weekend, the month of the
year per category (waterlogging in the plum-rain season, unpaid wages before
the Spring Festival, school places in summer), Chinese public holidays and a
slow upward trend. On top of that background sit *events* (one burst main,
one noisy site) reported by many callers in their own words, and *surges*
(a cell of district × category running hot for some days). Both are written
to a side file so clustering and detection can be scored.

Texts are built from the phrasebook: several phrasings per problem, details,
requests, greetings and closings, dialect words, ASR slips, fillers and
repetitions, numbers and addresses, and now and then a mention of another
category or a wrong label, as in real work orders. Nothing here is a
template per class: :mod:`bench.demo_data` reports what plain TF-IDF scores.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import math
import random
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hotline.calendar import day_kind
from hotline.places import District, Gazetteer
from hotline.taxonomy import Taxonomy

COLUMNS = [
    "id", "received_at", "channel", "caller_phone", "title", "transcript",
    "district", "street", "address", "lat", "lon",
    "category_l1", "category_l2", "category_l3", "department", "status",
]
_CHANNELS = (("phone", 0.66), ("web", 0.14), ("app", 0.08), ("wechat", 0.12))
_DOW = (1.15, 1.05, 1.0, 1.0, 0.95, 0.78, 0.72)
_HOUR_DAY = [0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.4, 1.2, 2.4, 3.0, 3.0, 2.6, 1.6, 2.0, 2.8, 2.9, 2.6, 2.0, 1.5, 1.3, 1.1, 0.8, 0.5, 0.3]
_HOUR_NIGHT = [1.2, 0.8, 0.4, 0.2, 0.1, 0.1, 0.2, 0.3, 0.3, 0.2, 0.2, 0.2, 0.3, 0.3, 0.2, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0, 2.8, 3.0, 2.2]
_CN_NUM = "零一二三四五六七八九"
_MOBILE_PREFIXES = ("138", "139", "137", "136", "135", "150", "151", "152", "157", "158", "159", "182", "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "180", "189", "177", "199")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜崔钟陆汪范金顾缪储"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰建国红梅文斌宇浩凯鹏婷雪琴云飞海燕春"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


@dataclass
class Event:
    """One incident many callers report: ground truth for event clustering."""

    id: str
    category_l2: str
    category_l3: str
    district: str
    street: str
    place: str
    start: str
    case_ids: list[str] = field(default_factory=list)


@dataclass
class Surge:
    """A cell (district × category) whose daily rate becomes ``rate * factor + extra_per_day`` for some days.

    The additive part keeps a surge in a quiet cell visible: tripling 0.2
    calls a day is not an outbreak anyone could see.
    """

    id: str
    district: str
    category_l2: str
    start: str
    end: str
    factor: float
    extra_per_day: float
    case_ids: list[str] = field(default_factory=list)


@dataclass
class Truth:
    events: list[Event]
    surges: list[Surge]

    def to_json(self) -> dict[str, Any]:
        return {"events": [asdict(e) for e in self.events], "surges": [asdict(s) for s in self.surges]}


@lru_cache(maxsize=1)
def load_phrasebook() -> dict[str, Any]:
    return tomllib.loads(resources.files("hotline.demo").joinpath("phrasebook.toml").read_text("utf-8"))


def _holiday_factor(day: date) -> tuple[float, bool]:
    """(dow factor, is public holiday); weekends that are adjusted workdays count as workdays."""
    weekday, holiday = day_kind(day)
    return (0.75 if holiday else _DOW[weekday]), holiday


def _id_number(rng: random.Random, district_code: str) -> str:
    born = date(1950, 1, 1) + timedelta(days=rng.randrange(0, 365 * 55))
    body = f"{district_code}{born:%Y%m%d}{rng.randrange(1000):03d}"
    total = sum(int(d) * w for d, w in zip(body, _ID_WEIGHTS, strict=True))
    return body + "10X98765432"[total % 11]


class DemoGenerator:
    """Generates calls for ``days`` days from ``start``; deterministic for a seed."""

    def __init__(
        self,
        gazetteer: Gazetteer,
        taxonomy: Taxonomy,
        seed: int = 0,
        rate: float = 150.0,
        events_per_day: float = 1.0,
        surges_per_month: float = 3.0,
        label_noise: float = 0.01,
    ) -> None:
        self.gazetteer = gazetteer
        self.taxonomy = taxonomy
        self.book = load_phrasebook()
        self.seed = seed
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.rate = rate
        self.events_per_day = events_per_day
        self.surges_per_month = surges_per_month
        self.label_noise = label_noise
        self.cats = {name: spec for name, spec in self.book["categories"].items() if name in taxonomy.categories}
        missing = set(taxonomy.categories) - set(self.cats)
        if missing:
            raise ValueError(f"phrasebook lacks categories {sorted(missing)}")
        self.districts = list(gazetteer.districts.values())
        self._serial = itertools.count()
        self._neighbours: dict[str, list[str]] = {}
        for group in self.book["confusions"]["groups"]:
            for name in group:
                self._neighbours.setdefault(name, []).extend(n for n in group if n != name and n in self.cats)

    # ------------------------------------------------------------ volumes
    def _expected(self, day: date, start: date) -> np.ndarray:
        """Expected background counts per (district, category) on ``day``."""
        dow, holiday = _holiday_factor(day)
        trend = 1.0 + 0.1 * (day - start).days / 365.0
        cat_w = np.array([c["weight"] * c["months"][day.month - 1] * (c["holiday"] if holiday else 1.0) for c in self.cats.values()])
        cat_w /= sum(c["weight"] for c in self.cats.values())
        dist_w = np.array([d.weight for d in self.districts])
        dist_w /= dist_w.sum()
        return self.rate * dow * trend * np.outer(dist_w, cat_w)

    def _plan_surges(self, start: date, days: int) -> list[Surge]:
        n = self.np_rng.poisson(self.surges_per_month * days / 30.0)
        names = list(self.cats)
        surges: list[Surge] = []
        for i in range(n):
            first = start + timedelta(days=int(self.rng.randrange(7, max(8, days - 3))))
            length = self.rng.randint(2, 7)
            surges.append(
                Surge(
                    id=f"S{i + 1:04d}",
                    district=self.rng.choice(self.districts).name,
                    category_l2=self.rng.choice(names),
                    start=first.isoformat(),
                    end=min(first + timedelta(days=length - 1), start + timedelta(days=days - 1)).isoformat(),
                    factor=round(self.rng.uniform(2.0, 4.0), 2),
                    extra_per_day=round(self.rng.uniform(2.0, 5.0), 2),
                )
            )
        return surges

    # ------------------------------------------------------------ public
    def generate(self, days: int, start: date) -> tuple[list[dict[str, Any]], Truth]:
        """All rows in time order, and the ground truth of events and surges."""
        if days < 1:
            raise ValueError("days must be at least 1")
        surges = self._plan_surges(start, days)
        events: list[Event] = []
        rows: list[dict[str, Any]] = []
        cat_names = list(self.cats)
        for offset in range(days):
            day = start + timedelta(days=offset)
            lam = self._expected(day, start)
            boosted = lam.copy()
            active: dict[tuple[int, int], Surge] = {}
            for s in surges:
                if s.start <= day.isoformat() <= s.end:
                    di = next(i for i, d in enumerate(self.districts) if d.name == s.district)
                    ci = cat_names.index(s.category_l2)
                    boosted[di, ci] = lam[di, ci] * s.factor + s.extra_per_day
                    active[(di, ci)] = s
            counts = self.np_rng.poisson(boosted)
            for (di, ci), n in np.ndenumerate(counts):
                surge = active.get((di, ci))
                for _ in range(n):
                    row = self._case(day, self.districts[di], cat_names[ci])
                    rows.append(row)
                    if surge is not None:
                        surge.case_ids.append(row["id"])
            for _ in range(self.np_rng.poisson(self.events_per_day)):
                events.append(self._event(day, len(events) + 1, rows))
        last = (start + timedelta(days=days - 1)).isoformat()
        rows = sorted((r for r in rows if r["received_at"][:10] <= last), key=lambda r: r["received_at"])  # events run on
        counters: dict[str, int] = {}
        renamed: dict[str, str] = {}
        # Ids carry a mark of the run (seed, first day, length, rate): a second generated file imported
        # into the demo's store adds its cases instead of silently replacing the demo's (54,016 "updated").
        run = hashlib.blake2b(f"{self.seed}/{start}/{days}/{self.rate}".encode(), digest_size=2).hexdigest()
        for row in rows:
            key = row["received_at"][:10].replace("-", "")
            counters[key] = counters.get(key, 0) + 1
            new_id = f"TZ{key}{run}{counters[key]:05d}"
            renamed[row["id"]] = new_id
            row["id"] = new_id
        planted: list[Event | Surge] = [*events, *surges]
        for item in planted:
            item.case_ids = sorted(renamed[c] for c in item.case_ids if c in renamed)
        return rows, Truth(events, surges)

    # ------------------------------------------------------------ cases
    def _event(self, day: date, number: int, rows: list[dict[str, Any]]) -> Event:
        names = list(self.cats)
        weights = [self.cats[n]["weight"] for n in names]
        l2 = self.rng.choices(names, weights)[0]
        l3 = self.rng.choice(list(self.cats[l2]["l3"]))
        district = self.rng.choices(self.districts, [d.weight for d in self.districts])[0]
        street = self.rng.choice(district.streets)
        place = self._place(district)
        event = Event(f"E{number:05d}", l2, l3, district.name, street, place, day.isoformat())
        size = max(3, int(self.np_rng.lognormal(math.log(9), 0.6)))
        start_hour = self.rng.uniform(6, 22)
        jitter = (self.rng.gauss(0, 0.01), self.rng.gauss(0, 0.01))
        for _ in range(size):
            hours = start_hour + self.np_rng.exponential(14.0)
            at = datetime.combine(day, datetime.min.time()) + timedelta(hours=hours)
            row = self._case(at.date(), district, l2, l3=l3, street=street, place=place, at=at, jitter=jitter)
            rows.append(row)
            event.case_ids.append(row["id"])
        return event

    def _mention(self, l2: str) -> str:
        """A problem of a neighbouring category, said in passing: why real labels are ambiguous."""
        rng = self.rng
        near = self._neighbours.get(l2, [])
        other = rng.choice(near) if near and rng.random() < 0.8 else rng.choice(list(self.cats))
        spec = self.cats[other]
        if rng.random() < 0.6:
            return rng.choice(spec["l3"][rng.choice(list(spec["l3"]))])
        return rng.choice(spec["details"])

    def _place(self, district: District) -> str:
        if self.rng.random() < 0.6:
            return self.rng.choice(district.communities)
        return self.rng.choice(district.roads)

    def _time(self, day: date, night_share: float) -> datetime:
        profile = _HOUR_NIGHT if self.rng.random() < night_share else _HOUR_DAY
        hour = self.rng.choices(range(24), profile)[0]
        return datetime(day.year, day.month, day.day, hour, self.rng.randrange(60), self.rng.randrange(60))

    def _case(
        self,
        day: date,
        district: District,
        l2: str,
        l3: str | None = None,
        street: str | None = None,
        place: str | None = None,
        at: datetime | None = None,
        jitter: tuple[float, float] | None = None,
    ) -> dict[str, Any]:
        rng = self.rng
        cat = self.cats[l2]
        l3 = l3 or rng.choice(list(cat["l3"]))
        street = street or rng.choice(district.streets)
        place = place or self._place(district)
        at = at or self._time(day, cat["night"])
        channel = rng.choices([c for c, _ in _CHANNELS], [w for _, w in _CHANNELS])[0]
        phone = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        slots = self._slots(district, street, place)
        problem = self._fill(rng.choice(cat["l3"][l3]), slots)
        extra = []
        if rng.random() < 0.25:
            extra.append(self._fill(rng.choice(cat["l3"][l3]), slots))
        elif rng.random() < 0.1:
            other = rng.choice(list(cat["l3"]))
            extra.append(self._fill(rng.choice(cat["l3"][other]), slots))
        if rng.random() < 0.5:
            extra.append(self._fill(self._mention(l2), slots))
        if rng.random() < 0.3:
            if rng.random() < 0.3:
                extra.insert(0, problem)
            problem = rng.choice(self.book["vague"][self.taxonomy.categories[l2].l1])
        detail = self._fill(rng.choice(cat["details"]), slots) if rng.random() < 0.55 else ""
        impact = rng.choice(self.book["common"]["impacts"]) if rng.random() < 0.35 else ""
        pool = cat["asks"] if rng.random() < 0.55 else self.book["common"]["asks"]
        ask = rng.choice(pool) if rng.random() < 0.8 else ""
        short = rng.random() < 0.15
        if short:
            extra, detail, impact = [], "", ""
        address = self._address(district, street, place)
        pii = self._pii(l2, district, phone)
        if channel == "phone":
            transcript, title = self._dialogue(problem, extra, detail, impact, ask, address, slots, pii), ""
        else:
            transcript = self._message(problem, extra, detail, impact, ask, slots, pii)
            title = self._title(problem, place, district)
        label_l2, label_l3 = l2, l3
        if rng.random() < self.label_noise:
            siblings = [c for c in self.cats if c != l2 and self.taxonomy.categories[c].l1 == self.taxonomy.categories[l2].l1]
            label_l2 = rng.choice(siblings or [c for c in self.cats if c != l2])
            label_l3 = rng.choice(list(self.cats[label_l2]["l3"]))
        departments = list(self.taxonomy.departments_for(self.taxonomy.categories[label_l2].category)[:1])
        # Jurisdiction categories are led by the district office in towns, by the municipal department in the city.
        rural = street.endswith(("镇", "乡"))
        if (label_l2 in self.taxonomy.jurisdiction and rural) != (rng.random() < 0.01):
            departments.insert(0, district.office)
        center = district.center
        jl = jitter or (rng.gauss(0, 0.03), rng.gauss(0, 0.03))
        return {
            "id": f"tmp{next(self._serial)}",
            "received_at": at.strftime("%Y-%m-%d %H:%M:%S"),
            "channel": channel,
            "caller_phone": phone,
            "title": title,
            "transcript": transcript,
            "district": district.name if rng.random() < 0.97 else "",
            "street": street if rng.random() < 0.85 else "",
            "address": address,
            "lat": round(center.lat + jl[0] + rng.gauss(0, 0.002), 5),
            "lon": round(center.lon + jl[1] + rng.gauss(0, 0.002), 5),
            "category_l1": self.taxonomy.categories[label_l2].l1,
            "category_l2": label_l2,
            "category_l3": label_l3,
            "department": "|".join(departments),
            "status": self._status(),
        }

    def _status(self) -> str:
        return self.rng.choices(["closed", "resolved", "in_progress", "dispatched"], [0.6, 0.3, 0.06, 0.04])[0]

    # ------------------------------------------------------------ text pieces
    def _slots(self, district: District, street: str, place: str) -> dict[str, str]:
        rng = self.rng
        common = self.book["common"]
        return {
            "district": district.name if rng.random() < 0.6 else "",
            "street": street,
            "place": place,
            "dur": rng.choice(common["durations"]),
            "n": str(rng.randint(2, 9)) if rng.random() < 0.5 else _CN_NUM[rng.randint(2, 9)],
            "amount": self._amount(),
            "company": rng.choice(common["companies"]),
            "school": rng.choice(common["schools"]),
            "hospital": rng.choice(common["hospitals"]),
            "shop": rng.choice(common["shops"]),
            "bus": str(rng.randint(1, 99)),
        }

    def _amount(self) -> str:
        rng = self.rng
        kind = rng.random()
        if kind < 0.4:
            return f"{rng.randint(2, 98) * 100}元"
        if kind < 0.7:
            return f"{_CN_NUM[rng.randint(2, 9)]}千多块钱"
        return f"{_CN_NUM[rng.randint(1, 9)]}万多"

    def _fill(self, text: str, slots: dict[str, str]) -> str:
        return text.format_map(slots)

    def _address(self, district: District, street: str, place: str) -> str:
        rng = self.rng
        if place in district.roads:
            return f"{district.name}{street}{place}{rng.randint(1, 300)}号"
        return f"{district.name}{street}{place}{rng.randint(1, 40)}栋{rng.randint(1, 4)}单元"

    def _pii(self, l2: str, district: District, phone: str) -> list[str]:
        """What the caller says about themselves: a name, maybe a phone or ID number."""
        rng = self.rng
        said = []
        if rng.random() < 0.35:
            surname = rng.choice(_SURNAMES)
            said.append(f"我姓{surname}" if rng.random() < 0.6 else f"我叫{surname}{''.join(rng.choices(_GIVEN, k=rng.randint(1, 2)))}")
        if rng.random() < 0.3:
            digits = phone if rng.random() < 0.75 else "".join(_CN_NUM[int(d)] if d != "1" or rng.random() < 0.5 else "幺" for d in phone)
            said.append(f"我电话是{digits}")
        if l2 in {"社会保险", "医疗保险", "户籍证件", "社会救助", "就业创业"} and rng.random() < 0.3:
            said.append(f"我身份证号是{_id_number(rng, district.code)}")
        return said

    def _speak(self, text: str, phone: bool) -> str:
        """Spoken texture: dialect words, fillers, stutters, and (on the phone) ASR slips."""
        rng = self.rng
        if rng.random() < 0.3:
            for std, local in self.book["dialect"].items():
                if std in text and rng.random() < 0.5:
                    text = text.replace(std, local, 1)
        if phone and rng.random() < 0.25:
            slips = [(a, b) for a, b in self.book["asr_slips"].items() if a in text]
            for a, b in rng.sample(slips, min(len(slips), rng.randint(1, 2))):
                text = text.replace(a, b, 1)
        if phone and rng.random() < 0.35:
            text = rng.choice(self.book["common"]["fillers"]) + "，" + text
        if phone and rng.random() < 0.15 and len(text) > 4:
            cut = rng.randint(2, min(6, len(text) - 1))
            text = text[:cut] + text[:cut] + text[cut:]
        return text

    def _dialogue(
        self, problem: str, extra: list[str], detail: str, impact: str, ask: str,
        address: str, slots: dict[str, str], pii: list[str],
    ) -> str:
        rng = self.rng
        common = self.book["common"]
        turns: list[tuple[str, str]] = [("A", self._fill(rng.choice(common["agent_greetings"]), slots))]
        opener = rng.choice(common["openers"]) if rng.random() < 0.6 else ""
        where = f"{slots['district']}{slots['place']}" if rng.random() < 0.5 else ""
        first = "，".join(p for p in (opener, f"{where}这边{problem}" if where else problem, *extra[:1]) if p)
        turns.append(("C", self._speak(first, True)))
        if not where or rng.random() < 0.4:
            turns.append(("A", rng.choice(common["agent_where"])))
            turns.append(("C", self._speak(address if rng.random() < 0.7 else f"就在{slots['place']}那边", True)))
        rest = "，".join(p for p in (*extra[1:], detail, impact) if p)
        if rest:
            turns.append(("C", self._speak(rest, True)))
        if rng.random() < 0.3:
            turns.append(("A", rng.choice(common["agent_confirms"]).format(summary=problem)))
            turns.append(("C", rng.choice(["对对对", "是的", "对的", "嗯，是的"])))
        if pii:
            turns.append(("A", rng.choice(common["agent_contact"])))
            turns.append(("C", "，".join(pii)))
        if ask:
            turns.append(("C", self._speak(ask, True)))
        turns.append(("A", rng.choice(common["agent_closings"])))
        if rng.random() < 0.6:
            turns.append(("C", rng.choice(["好的，谢谢", "好，谢谢你啊", "行，麻烦你们了", "谢谢，再见"])))
        return self._render(turns)

    def _render(self, turns: list[tuple[str, str]]) -> str:
        rng = self.rng
        style = rng.random()
        if style < 0.55:
            return "\n".join(f"{'坐席' if s == 'A' else '市民'}：{t}" for s, t in turns)
        if style < 0.65:
            return "\n".join(f"{'话务员' if s == 'A' else '来电人'}：{t}" for s, t in turns)
        if style < 0.75:
            return " ".join(f"{'坐席' if s == 'A' else '市民'}：{t}" for s, t in turns)
        if style < 0.87:
            first = rng.choice((1, 2))
            return "\n".join(f"说话人{first if s == 'A' else 3 - first}：{t}" for s, t in turns)
        clock = 0.0
        segments = []
        speakers = {"A": rng.choice(("agent", "0")), "C": None}
        speakers["C"] = "customer" if speakers["A"] == "agent" else "1"
        for s, t in turns:
            length = round(0.25 * len(t) + rng.uniform(0.3, 1.5), 2)
            segments.append({"speaker": speakers[s], "start": round(clock, 2), "end": round(clock + length, 2), "text": t})
            clock += length + rng.uniform(0.2, 1.0)
        return json.dumps({"segments": segments}, ensure_ascii=False)

    def _message(
        self, problem: str, extra: list[str], detail: str, impact: str, ask: str,
        slots: dict[str, str], pii: list[str],
    ) -> str:
        rng = self.rng
        common = self.book["common"]
        intro = self._fill(rng.choice(common["self_intro"]), slots)
        body = "，".join(p for p in (problem, *extra, detail, impact) if p)
        parts = [rng.choice(common["web_openers"]), intro + body + "。"]
        if ask:
            parts.append(ask + "。")
        if pii and rng.random() < 0.5:
            parts.append("，".join(pii) + "。")
        parts.append(rng.choice(common["web_closings"]))
        return self._speak("".join(parts), False)

    def _title(self, problem: str, place: str, district: District) -> str:
        forms = ("关于{place}{p}的问题", "{d}{place}{p}", "反映{place}{p}", "{p}")
        return self.rng.choice(forms).format(place=place, p=problem[:14], d=district.name)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write rows with the standard columns (UTF-8 with BOM, so Excel opens it right)."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def truth_path(csv_path: Path) -> Path:
    """Where the ground truth of ``data.csv`` lives: ``data.truth.json``."""
    return csv_path.with_suffix(".truth.json")
