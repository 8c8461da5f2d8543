"""Episodes: consecutive alert days of a cell become one, ranked by excess calls, linked to their events."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from hotline.analytics.events import Event, attach_events
from hotline.analytics.hotspots.detect import Alert
from hotline.analytics.hotspots.episodes import episodes

DAY = date(2025, 7, 1)


def alert(day: int, observed: int, expected: float, score: float, area: str = "海陵区", category: str = "供水",
          method: str = "nb") -> Alert:
    return Alert(DAY + timedelta(days=day), area, category, observed, expected, score, method)


def test_a_week_of_alerts_is_one_episode_and_excess_ranks_first() -> None:
    found = episodes([
        *(alert(d, 11, 0.9, 8.0) for d in (0, 1, 2, 4)),  # a surge over a weekend with a quiet day in it
        alert(0, 1, 0.0, 11.2, area="姜堰区", category="噪声"),  # one unexpected call: the old list's top
        alert(1, 2, 0.1, 9.0, area="姜堰区", category="噪声"),
        alert(10, 6, 1.0, 3.0),  # a second episode of the same cell, a week later
        alert(3, 7, 2.0, 2.5, area="兴化市", category="路灯", method="nb-cusum"),
    ])
    assert [(e.area, e.category, e.start) for e in found] == [
        ("海陵区", "供水", DAY), ("海陵区", "供水", DAY + timedelta(days=10)), ("兴化市", "路灯", DAY + timedelta(days=3))]
    top = found[0]
    assert top.alert_days == 4 and top.end == DAY + timedelta(days=4) and top.observed == 44
    assert round(top.excess, 1) == 40.4 and "多出 40 件" in top.explanation
    # In plain terms: how many times the usual, and how rare (not "10^-8.0（分数 8.0）").
    assert "的 12.2 倍" in top.explanation and "约 1 亿天才出现一次" in top.explanation
    assert "10^" not in top.explanation and "分数" not in top.explanation
    assert "缓慢上升" in found[2].explanation  # the CUSUM's evidence is said in its own words
    assert episodes([alert(0, 1, 0.0, 11.2)], min_calls=1)[0].observed == 1


def test_episodes_link_the_events_of_their_cell_and_days() -> None:
    found = episodes([alert(d, 9, 1.0, 6.0) for d in range(3)])
    at = datetime.combine(DAY, datetime.min.time())
    inside = Event("EV1", "海陵区", "城东街道", at + timedelta(days=1), at + timedelta(days=2, hours=3), size=7,
                   categories=Counter({"供水": 7}))
    elsewhere = Event("EV2", "姜堰区", "", at, at, size=5, categories=Counter({"供水": 5}))
    later = Event("EV3", "海陵区", "", at + timedelta(days=9), at + timedelta(days=9), size=4,
                  categories=Counter({"供水": 4}))
    attach_events(found, [inside, elsewhere, later])
    assert [e["id"] for e in found[0].events] == ["EV1"] and found[0].to_dict()["events"][0]["size"] == 7


def test_an_episode_takes_in_the_raised_days_the_detector_let_pass() -> None:
    """A five-day surge the baseline starts to absorb is flagged on one day; the episode is all five, and two
    runs that grow into each other are one."""
    import numpy as np

    from hotline.analytics.hotspots.series import CountTable

    counts = np.array([[1, 0, 1, 9, 8, 12, 9, 10, 1, 0, 1, 0, 1, 0]])
    mu = np.full(counts.shape, 1.0)
    table = CountTable([("海陵区", "供水")], DAY, counts)
    found = episodes([alert(5, 12, 1.0, 5.0), alert(9, 0, 1.0, 2.1)], min_calls=1, gap=1, table=table, expected=mu)
    top = found[0]
    assert (top.start, top.end) == (DAY + timedelta(days=3), DAY + timedelta(days=7))
    assert top.observed == 48 and top.expected == 5.0 and top.alert_days == 1
    merged = episodes([alert(3, 9, 1.0, 5.0), alert(7, 10, 1.0, 5.0)], gap=1, table=table, expected=mu)
    assert len(merged) == 1 and merged[0].alert_days == 2 and merged[0].observed == 48
