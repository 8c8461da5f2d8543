"""HTML the project writes (the supervisors' report, a candidate's evaluation), from Jinja2 templates.

Both were strings built by hand, each escaping (or forgetting to escape) on
its own; templates escape every value by default, so a citizen's text can
never become markup, and the page's shape is read in one file.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(loader=PackageLoader("hotline", "templates"), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **values: Any) -> str:
    """``hotline/templates/<template>`` filled with ``values`` (escaped unless marked safe)."""
    return _environment().get_template(template).render(**values)
