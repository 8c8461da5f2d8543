"""The cell a case is counted in: its district (or 未知区域) × its level-2 category (else level 1, else 未分类).

At street level the area is the district and the street, ``海陵区·城东街道`` (a case without a street stays
in its district's cell).

Every table, alert, report row and search-index count names cells this way;
it was once re-derived in eight places, each free to drift from the others.
"""

from __future__ import annotations

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
