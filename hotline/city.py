"""The city a deployment serves: its gazetteer, taxonomy, routing rules and the segmenter with its words.

Built once from :class:`~hotline.settings.Settings` at an entry point (the
CLI's ``main``, the service's ``Services``) and passed down; nothing below
reads the environment for it. ``Services(Settings(gazetteer=…))`` once
ignored the gazetteer it was given because the parts re-read
``HOTLINE_GAZETTEER`` themselves.

A model learns the city's words (segmentation) and offices (属地): its
manifest keeps this context's fingerprint, and a model trained under another
city's context is refused rather than served with the wrong words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hotline.errors import Conflict
from hotline.places import Gazetteer
from hotline.settings import Settings
from hotline.taxonomy import Taxonomy
from hotline.text.segment import Segmenter, government_terms


@dataclass(frozen=True)
class City:
    gazetteer: Gazetteer
    taxonomy: Taxonomy
    routing_rules: Path | None = None    # None: the bundled keyword rules
    backend: str = "rjieba"

    @classmethod
    def from_settings(cls, settings: Settings) -> City:
        gazetteer = Gazetteer.load(settings.gazetteer)
        taxonomy = Taxonomy.load(settings.taxonomy, gazetteer.offices())
        return cls(gazetteer, taxonomy, settings.routing_rules, settings.segmenter)

    @classmethod
    def bundled(cls, backend: str = "rjieba") -> City:
        """泰州, as the project ships it (what tests and tools use when no deployment says otherwise)."""
        from hotline.places import default_gazetteer
        from hotline.taxonomy import default_taxonomy

        return cls(default_gazetteer(), default_taxonomy(), None, backend)

    def vocabulary(self) -> list[tuple[str, int]]:
        """The words the segmenter adds to jieba's: government terms, places, departments, categories."""
        return government_terms() + self.gazetteer.vocabulary() + self.taxonomy.vocabulary()

    def serve(self) -> City:
        """Make this the city of every segmenter the process hands out (models find theirs by backend name)."""
        from hotline.text.segment import serve_city

        serve_city(self.vocabulary())
        return self

    @property
    def segmenter(self) -> Segmenter:
        from hotline.text.segment import default_segmenter

        return default_segmenter(self.backend)

    def fingerprint(self) -> dict[str, str]:
        """Hashes of what a model learns from the city: its places and offices, its taxonomy, its words."""
        def digest(items: object) -> str:
            return hashlib.blake2b(repr(items).encode("utf-8"), digest_size=8).hexdigest()

        return {
            "gazetteer": digest(sorted((d.name, d.office, d.streets, d.roads, d.communities)
                                       for d in self.gazetteer.districts.values())),
            "taxonomy": digest(sorted((c.l1, c.l2, c.l3, c.departments) for c in self.taxonomy.categories.values())),
            "segmenter": digest((self.backend, sorted(self.vocabulary()))),
        }

    def check_model(self, version: str, recorded: dict[str, str] | None) -> None:
        """Refuse a model whose manifest records another city context (a model from before records none)."""
        if not recorded:
            return
        mine = self.fingerprint()
        differs = [part for part, value in recorded.items() if mine.get(part) != value]
        if differs:
            raise Conflict(f"model {version} was trained under another city context ({', '.join(differs)} differ); "
                           "retrain it with this city's gazetteer, taxonomy and segmenter")
