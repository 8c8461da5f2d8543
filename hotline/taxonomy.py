"""Categories (three levels) and departments (承办单位), as data.

The taxonomy file lists the municipal departments, the public utilities that
take cases, and each second-level category with its third levels and its
default departments (lead first). District offices come from the gazetteer,
so routing by jurisdiction needs no edit here when the city changes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from hotline.case import Category
from hotline.datafiles import toml_data
from hotline.errors import Implausible, InvalidInput, NotFound

TERM_FREQ = 3000


@dataclass(frozen=True, slots=True)
class Department:
    id: str
    name: str
    kind: str = "municipal"
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CategorySpec:
    l1: str
    l2: str
    l3: tuple[str, ...]
    departments: tuple[str, ...]
    jurisdiction: bool = False

    @property
    def category(self) -> Category:
        return Category(self.l1, self.l2)


class Taxonomy:
    """All categories and departments, with lookups in both directions."""

    def __init__(self, departments: list[Department], categories: list[CategorySpec]) -> None:
        self.departments = {d.id: d for d in departments}
        self.categories = {c.l2: c for c in categories}
        # Second-level categories the district office (属地) often leads.
        self.jurisdiction = frozenset(c.l2 for c in categories if c.jurisdiction)
        if len(self.categories) != len(categories):
            raise InvalidInput("taxonomy: second-level category names must be unique")
        for spec in categories:
            missing = [d for d in spec.departments if d not in self.departments]
            if missing:
                raise InvalidInput(f"taxonomy: category {spec.l2} names unknown departments {missing}")
        self._aliases = {alias: d.id for d in departments for alias in (d.id, d.name, *d.aliases)}

    @classmethod
    def load(cls, path: Path | str | None = None, district_offices: dict[str, str] | None = None) -> Taxonomy:
        """Load the taxonomy TOML (bundled when ``path`` is None) plus the district offices."""
        with toml_data(path, "taxonomy.toml", "taxonomy") as data:
            departments = [
                Department(d["id"], d.get("name", d["id"]), d.get("kind", "municipal"), tuple(d.get("aliases", ())))
                for d in data["departments"]
            ]
            departments += [
                Department(office, office, "district", (district,))
                for district, office in (district_offices or {}).items()
            ]
            categories = [
                CategorySpec(c["l1"], c["l2"], tuple(c.get("l3", ())), tuple(c["departments"]),
                             bool(c.get("jurisdiction", False)))
                for c in data["categories"]
            ]
        return cls(departments, categories)

    @property
    def level1(self) -> list[str]:
        return sorted({c.l1 for c in self.categories.values()})

    def level1_of(self, name: str) -> str:
        """The first level of a category named by its second level (or already by its first, or unknown)."""
        spec = self.categories.get(name)
        return spec.l1 if spec is not None else name

    def spec(self, l2: str) -> CategorySpec:
        try:
            return self.categories[l2]
        except KeyError:
            raise NotFound(f"unknown category {l2!r}") from None

    def resolve(self, category: Category) -> Category:
        """Fill a missing first level from the second, and check the path exists."""
        if not category.l2:
            if category.l1 in self.categories:
                return self.resolve(Category(self.categories[category.l1].l1, category.l1))
            if category.l1 not in self.level1:
                raise NotFound(f"unknown category {category.l1!r}")
            return category
        spec = self.spec(category.l2)
        if category.l1 != spec.l1 or (category.l3 and category.l3 not in spec.l3):
            raise NotFound(f"category {category.path!r} is not in the taxonomy")
        return category

    def departments_for(self, category: Category) -> tuple[str, ...]:
        """Default departments of a category, lead first."""
        return self.spec(category.l2).departments if category.l2 in self.categories else ()

    def department_id(self, name: str) -> str:
        """Canonical department id for an id, full name or alias."""
        try:
            return self._aliases[name.strip()]
        except KeyError:
            raise NotFound(f"unknown department {name!r}") from None

    def checked_category(self, category: Category) -> Category:
        """``category`` resolved in the taxonomy, or :class:`Implausible` naming the closest valid paths.

        Labels train the next model: two made-up categories once made every
        retrain fail, and thirty made-up departments were auto-dispatched to.
        """
        try:
            return self.resolve(category)
        except NotFound:
            paths = [f"{s.l1}/{s.l2}" for s in self.categories.values()]
            paths += [f"{s.l1}/{s.l2}/{l3}" for s in self.categories.values() for l3 in s.l3]
            raise Implausible(f"category {category.path!r} is not in the taxonomy; "
                              f"closest: {_closest(category.path, paths)}") from None

    def checked_departments(self, names: Iterable[str]) -> tuple[str, ...]:
        """Canonical ids of ``names``, or :class:`Implausible` naming the closest departments for an unknown one."""
        found: list[str] = []
        for name in names:
            try:
                department = self.department_id(name)
            except NotFound:
                raise Implausible(f"department {name.strip()[:50]!r} is not in the taxonomy; "
                                  f"closest: {_closest(name, list(self._aliases))}") from None
            if department not in found:
                found.append(department)
        return tuple(found)

    def vocabulary(self) -> list[tuple[str, int]]:
        """Category and department names as segmenter words."""
        words = set(self._aliases)
        for spec in self.categories.values():
            words |= {spec.l1, spec.l2, *spec.l3}
        return [(w, TERM_FREQ) for w in sorted(words) if len(w) >= 2]


def _closest(wanted: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(wanted.strip(), choices, n=3, cutoff=0.2)
    return "、".join(close) if close else "(none; see GET /open311/v2/services.json)"


@lru_cache(maxsize=4)
def _load_cached(path: str | None, gazetteer_path: str | None) -> Taxonomy:
    from hotline.places import Gazetteer

    return Taxonomy.load(path, Gazetteer.load(gazetteer_path).offices())


def default_taxonomy() -> Taxonomy:
    """The bundled taxonomy with the bundled city's district offices, loaded once; a deployment's own comes from
    :class:`hotline.city.City`."""
    return _load_cached(None, None)
