"""The Chinese working calendar: public holidays and the weekend days worked in lieu (调休).

Call volumes follow the working week, and the week is moved around every
public holiday; a model that only knows Saturday and Sunday mistakes every
Golden Week for an outbreak of silence and every make-up Saturday for a surge.
``chinese-calendar`` knows the State Council's schedule for 2004–2026; for
other years the plain weekend is the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=4096)
def day_kind(day: date) -> tuple[int, bool]:
    """(the weekday the day behaves like, whether it is a public holiday).

    A weekend day worked in lieu behaves like a Monday; a public holiday keeps
    its weekday and is flagged.
    """
    try:
        import chinese_calendar

        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except (NotImplementedError, ImportError):
        return day.weekday(), False
    if name is not None and on_holiday:
        return day.weekday(), True
    if not on_holiday and day.weekday() >= 5:
        return 0, False
    return day.weekday(), False


def day_features(days: Sequence[date]) -> tuple[np.ndarray, np.ndarray]:
    """Effective weekday (0–6) and public-holiday flag for each day."""
    kinds = [day_kind(d) for d in days]
    return np.array([k[0] for k in kinds], dtype=np.int8), np.array([k[1] for k in kinds], dtype=bool)
