"""The city's gazetteer: districts, their streets and towns, roads and communities.

It places a case (district and street/town) from what the caller said, and
lends its names to the segmenter so place names stay whole tokens. The data
is one TOML file (``hotline/data/places/taizhou.toml`` for 泰州); another city
is one such file away (``HOTLINE_GAZETTEER``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from hotline.case import Area, Location
from hotline.datafiles import toml_data
from hotline.errors import InvalidInput

PLACE_FREQ = 5000


@dataclass(frozen=True, slots=True)
class District:
    name: str
    code: str
    office: str
    center: Location
    weight: float
    aliases: tuple[str, ...]
    neighbors: tuple[str, ...]
    streets: tuple[str, ...]
    roads: tuple[str, ...]
    communities: tuple[str, ...]


def _town_stem(street: str) -> str | None:
    """``黄桥镇`` is also called ``黄桥``; ``城东街道`` has no safe short form."""
    for suffix in ("镇", "乡"):
        if street.endswith(suffix) and len(street) >= 3:
            return street[: -len(suffix)]
    return None


class Gazetteer:
    """Place names of one city and the lookup from text to :class:`Area`."""

    def __init__(self, city: str, districts: list[District], area_code: str = "", plate_prefix: str = "") -> None:
        if not districts:
            raise InvalidInput(f"gazetteer of {city!r} has no districts")
        self.city = city
        self.area_code = area_code
        self.plate_prefix = plate_prefix
        self.districts = {d.name: d for d in districts}
        for d in districts:
            unknown = set(d.neighbors) - set(self.districts)
            if unknown:
                raise InvalidInput(f"gazetteer: {d.name} names unknown neighbours {sorted(unknown)}")

    @classmethod
    def load(cls, path: Path | str | None = None) -> Gazetteer:
        """Load a gazetteer TOML; ``None`` loads the bundled 泰州 file."""
        with toml_data(path, "places/taizhou.toml", "gazetteer") as data:
            districts = [
                District(
                    name=d["name"],
                    code=str(d.get("code", "")),
                    office=d.get("office", d["name"] + "政府"),
                    center=Location(*d["center"]),
                    weight=float(d.get("weight", 1.0)),
                    aliases=tuple(d.get("aliases", ())),
                    neighbors=tuple(d.get("neighbors", ())),
                    streets=tuple(d.get("streets", ())),
                    roads=tuple(d.get("roads", ())),
                    communities=tuple(d.get("communities", ())),
                )
                for d in data["districts"]
            ]
            return cls(data["city"], districts, str(data.get("area_code", "")), data.get("plate_prefix", ""))

    def centers(self) -> dict[str, tuple[float, float]]:
        """Each district's centre as (lat, lon): what the maps are drawn from (no boundaries ship here)."""
        return {name: (d.center.lat, d.center.lon) for name, d in self.districts.items()}

    @cached_property
    def _names(self) -> dict[str, tuple[str, str]]:
        """Every name that places a case -> (district, street); ambiguous names are left out."""
        seen: dict[str, set[tuple[str, str]]] = {}

        def add(name: str, district: str, street: str = "") -> None:
            seen.setdefault(name, set()).add((district, street))

        for d in self.districts.values():
            for name in (d.name, *d.aliases):
                add(name, d.name)
            for street in d.streets:
                add(street, d.name, street)
                stem = _town_stem(street)
                if stem:
                    add(stem, d.name, street)
            for place in (*d.roads, *d.communities):
                add(place, d.name)
        return {name: next(iter(places)) for name, places in seen.items() if len(places) == 1}

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        names = sorted(self._names, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, names)))

    def extract(self, text: str) -> Area:
        """The area a text talks about: the first street or town named, else the first district.

        A street settles its district; a road or community only when no
        district or street is named.
        """
        district = street = ""
        fallback = ""
        for match in self._pattern.finditer(text):
            d, s = self._names[match.group()]
            name = match.group()
            if s:
                if not district or district == d:
                    return Area(d, s)
                continue
            if name == d or name in self.districts[d].aliases:
                district = district or d
            else:
                fallback = fallback or d
        return Area(district or fallback, street)

    def locate(self, area: Area) -> Location | None:
        """Approximate coordinates of an area (the district centre)."""
        district = self.districts.get(area.district)
        return district.center if district else None

    def offices(self) -> dict[str, str]:
        """District name -> the district office that has jurisdiction (属地)."""
        return {d.name: d.office for d in self.districts.values()}

    @cached_property
    def landmarks(self) -> frozenset[str]:
        """Roads and communities: places finer than a street, where one incident happens."""
        return frozenset(p for d in self.districts.values() for p in (*d.roads, *d.communities))

    def vocabulary(self) -> list[tuple[str, int]]:
        """Place names as segmenter words."""
        words = set(self._names) | {d.office for d in self.districts.values()} | {self.city}
        words |= {street for d in self.districts.values() for street in d.streets}
        return [(w, PLACE_FREQ) for w in sorted(words) if len(w) >= 2]


@lru_cache(maxsize=4)
def _load_cached(path: str | None) -> Gazetteer:
    return Gazetteer.load(path)


def default_gazetteer() -> Gazetteer:
    """The bundled city's gazetteer (泰州), loaded once; a deployment's own comes from :class:`hotline.city.City`."""
    return _load_cached(None)
