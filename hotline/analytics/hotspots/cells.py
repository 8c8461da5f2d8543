"""The cell a case is counted in: its district (or 未知区域) × its level-2 category (else level 1, else 未分类).

At street level the area is the district and the street, ``海陵区·城东街道`` (a case without a street stays
in its district's cell).

Every table, alert, report row and search-index count names cells this way;
it was once re-derived in eight places, each free to drift from the others.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hotline.case import Case, Category

UNKNOWN_AREA = "未知区域"
UNCATEGORISED = "未分类"
STREET_SEPARATOR = "·"


def cell_area(district: str | None, street: str | None = None) -> str:
    """The district, or ``district·street`` when a street is given (street-level cells)."""
    area = district or UNKNOWN_AREA
    return f"{area}{STREET_SEPARATOR}{street}" if street else area


def area_district(area: str) -> str:
    """The district of a cell's area, street-level or not."""
    return area.split(STREET_SEPARATOR, 1)[0]


def cell_category(category: Category | str | None) -> str:
    """Level 2, else level 1 of a category (or of an already-chosen cell category), else 未分类."""
    if isinstance(category, Category):
        return category.l2 or category.l1
    return category or UNCATEGORISED


def cell_of(case: Case) -> tuple[str, str]:
    return cell_area(case.area.district), cell_category(case.category)


def stored_cell(area: str, category: str) -> tuple[str, str, str]:
    """The (district, street, category) a store keeps for a cell's cases: "" where the cell names none
    (未知区域, 未分类), the street only for a street-level cell."""
    district, _, street = area.partition(STREET_SEPARATOR)
    return "" if district == UNKNOWN_AREA else district, street, "" if category == UNCATEGORISED else category


def cell_cases(store: Any, area: str, category: str, first: date, last: date, limit: int) -> list[Case]:
    """Cases of one cell (district or ``district·street`` level) from ``first`` to ``last``, in the store's
    search order: searched by district, street and category, then kept when their own cell is this one."""
    from hotline.store.base import CaseQuery

    district, street, stored = stored_cell(area, category)
    query = CaseQuery.days(first, last, district=district, street=street, cell_category=stored, limit=limit)
    return [c for c in store.search(query).items
            if cell_area(c.area.district, c.area.street if street else None) == area
            and cell_category(c.category) == category]
