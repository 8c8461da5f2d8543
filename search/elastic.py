"""The Elasticsearch backend: one alias over versioned indices, jieba tokens under a whitespace analyzer.

The model's tokens are indexed space-joined and split again by the
``whitespace`` analyzer, so a search word matches a case word exactly as in
the embedded index; the original text is kept beside them, unindexed. Writes
and reads go through an alias (``hotline-cases`` by default, or the URL's
path), so :meth:`ElasticsearchIndex.rebuild` can fill a new versioned index
and switch the alias in one atomic step while searches keep running.

Every call has a timeout; a node that is down or slow raises
:class:`~hotline.errors.Unavailable` (the service then falls back to the
model's own similar-case index), never a hang.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from hotline.analytics.hotspots.cells import cell_category
from hotline.case import Case, Category, Neighbour, format_time
from hotline.errors import InvalidInput, NotFound, Unavailable
from hotline.store.base import CaseQuery, CaseStore, Page, redacted
from search.base import CachedCount, CellCount, DocFreqCache, neighbour, query_terms, similarity
from search.vectors import MIN_MEANING, VECTOR_CANDIDATES, Embedder, case_text, fuse

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "hotline-cases"
TIME = "yyyy-MM-dd HH:mm:ss"
MAX_WINDOW = 10_000
CANDIDATES = 50

_KEYWORD = {"type": "keyword"}
_STORED = {"type": "keyword", "index": False, "doc_values": False}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "received_at": {"type": "date", "format": TIME},
        "channel": _KEYWORD,
        "title": {"type": "text", "index": False},
        "text": {"type": "text", "index": False},
        "transcript": {"type": "text", "index": False},
        "caller": _STORED,
        "district": _KEYWORD,
        "street": _KEYWORD,
        "address": {"type": "text", "index": False},
        "location": {"type": "geo_point"},
        "category": _KEYWORD,
        "category_l1": _KEYWORD,
        "category_l2": _KEYWORD,
        "category_l3": _KEYWORD,
        "cell_category": _KEYWORD,
        "category_source": {"type": "object", "enabled": False},
        "departments": _KEYWORD,
        "departments_source": {"type": "object", "enabled": False},
        "status": _KEYWORD,
        "event_id": _KEYWORD,
        "tokens": {"type": "text", "analyzer": "whitespace", "norms": True},
    },
}


def split_url(url: str) -> tuple[list[str], str, dict[str, int]]:
    """``http://host1:9200,host2:9200/alias?replicas=1`` → (the nodes, the alias, the index settings).

    A cluster is named by several of its nodes, so that the client goes on to
    another when one is down; ``shards`` and ``replicas`` set the indices the
    alias will name (one shard, no replica by default: one node).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidInput(f"not an Elasticsearch URL: {url!r} (expected http://host:9200[,host2:9200][/alias])")
    alias = parts.path.strip("/") or DEFAULT_ALIAS
    if not alias.replace("-", "").replace("_", "").isalnum() or alias != alias.lower():
        raise InvalidInput(f"index alias {alias!r} must be lower-case letters, digits, '-' or '_'")
    options: dict[str, int] = {}
    for key, values in parse_qs(parts.query, keep_blank_values=True).items():
        if key not in ("shards", "replicas") or len(values) != 1 or not values[0].isdigit() or int(values[0]) > 100:
            raise InvalidInput(f"Elasticsearch URL option {key}={values!r}: only shards=N and replicas=N (0-100)")
        options[key] = int(values[0])
    if options.get("shards") == 0:
        raise InvalidInput("an index needs at least one shard")
    hosts = [f"{parts.scheme}://{host.strip()}" for host in parts.netloc.split(",") if host.strip()]
    return hosts, alias, options


def _versioned(case_id: str, versions: Mapping[str, int] | None) -> dict[str, Any]:
    """Elasticsearch's external versioning: the write is applied only over an older version of the document."""
    if versions is None or case_id not in versions:
        return {}
    return {"version": versions[case_id], "version_type": "external"}


class ElasticsearchIndex:
    """The :class:`~search.base.SearchIndex` on an Elasticsearch 8 cluster."""

    def __init__(
        self,
        url: str,
        tokenize: Callable[[str], list[str]] | None = None,
        timeout: float = 10.0,
        shards: int = 1,
        replicas: int = 0,
        chunk_size: int = 1000,
        embedder: Embedder | None = None,
        min_meaning: float = MIN_MEANING,
    ) -> None:
        self.url = url
        self.embedder = embedder
        self.min_meaning = min_meaning
        hosts, self.alias, options = split_url(url)
        # A request to a node that is down is retried on another one the URL names.
        self.client = Elasticsearch(hosts, request_timeout=timeout, max_retries=max(1, len(hosts) - 1),
                                    retry_on_timeout=False)
        # The client logs every retry with a full traceback (300 MB a day while a node was away); the failure
        # reaches us as Unavailable, and the service's loops say once that the index is away and once that it
        # is back (hotline.outage).
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
        self._tokenize = tokenize
        self.shards = options.get("shards", shards)
        self.replicas = options.get("replicas", replicas)
        self.chunk_size = chunk_size
        self._ready = False
        self._doc_freq = DocFreqCache(self._lookup)
        self._count_cached = CachedCount(self.count)

    @property
    def tokenize(self) -> Callable[[str], list[str]]:
        if self._tokenize is None:  # whoever opened the index gave none: the served city's default segmenter
            from hotline.text.segment import default_segmenter

            self._tokenize = default_segmenter().tokens
        return self._tokenize

    # ------------------------------------------------------------ plumbing
    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one request; transport failures become :class:`Unavailable` with what was being done."""
        try:
            return fn()
        except NotFoundError:
            raise
        except (TransportConnectionError, ConnectionTimeout) as exc:
            raise Unavailable(f"Elasticsearch at {redacted(self.url)} is unreachable ({what}): {exc.__class__.__name__}") from None
        except ApiError as exc:
            if exc.meta.status == 400:
                raise InvalidInput(f"Elasticsearch refused the {what} request: {exc.message}") from None
            raise Unavailable(f"Elasticsearch error during {what}: {exc.meta.status} {exc.message}") from None
        except TransportError as exc:
            raise Unavailable(f"Elasticsearch at {redacted(self.url)} failed ({what}): {exc}") from None

    def ensure(self) -> None:
        """Install the index template and create the first versioned index behind the alias."""
        if self._ready:
            return
        template: dict[str, Any] = {
            "index_patterns": [f"{self.alias}-v*"],
            "priority": 100,
            "template": {
                "settings": {"number_of_shards": self.shards, "number_of_replicas": self.replicas,
                             "refresh_interval": "1s"},
                "mappings": self._mappings(),
            },
        }
        self._call("template", lambda: self.client.indices.put_index_template(name=f"{self.alias}-template", **template))
        if not self._call("alias check", lambda: self.client.indices.exists_alias(name=self.alias)):
            first = f"{self.alias}-v1"
            try:
                self._call("create", lambda: self.client.indices.create(index=first, aliases={self.alias: {}}))
            except InvalidInput as exc:  # another process created it first
                if "already_exists" not in str(exc):
                    raise
        if self.embedder is not None:  # an index made before the encoder was configured gains the field
            self._call("vector mapping", lambda: self.client.indices.put_mapping(
                index=self.alias, properties={"vector": self._mappings()["properties"]["vector"]}))
        self._ready = True

    def _mappings(self) -> dict[str, Any]:
        if self.embedder is None:
            return MAPPINGS
        # float HNSW, not the int8 default: scores within 1e-6 of the embedded index's cosine (int8 differed by
        # 0.02, enough to move a case across MIN_MEANING); 2 KB a case, 4 GB of vectors for a city's two million.
        vector = {"type": "dense_vector", "dims": self.embedder.dimension, "index": True, "similarity": "cosine",
                  "index_options": {"type": "hnsw"}}
        return {**MAPPINGS, "properties": {**MAPPINGS["properties"], "vector": vector}}

    def versions(self) -> list[str]:
        """The concrete indices behind the alias."""
        self.ensure()
        return sorted(self._call("aliases", lambda: self.client.indices.get_alias(name=self.alias)).body)

    def _document(self, case: Case, vector: np.ndarray | None = None) -> dict[str, Any]:
        doc = case.to_dict()
        for kept_by_the_store_alone in ("media_url", "updated_at"):  # the index's strict mapping predates them
            doc.pop(kept_by_the_store_alone)
        category = case.category
        doc.update(
            category_l1=category.l1 if category else None,
            category_l2=(category.l2 or None) if category else None,
            category_l3=(category.l3 or None) if category else None,
            cell_category=cell_category(category) if category else "",
            tokens=" ".join(self.tokenize(f"{case.title} {case.text}")),
        )
        if vector is not None:
            doc["vector"] = vector.tolist()
        return doc

    def _documents(self, cases: Iterable[Case]) -> Iterator[tuple[Case, dict[str, Any]]]:
        """Each case with its document; with an encoder, vectors are computed a chunk at a time."""
        if self.embedder is None:
            yield from ((case, self._document(case)) for case in cases)
            return
        remaining = iter(cases)
        while chunk := list(itertools.islice(remaining, 256)):
            vectors = self.embedder.encode([case_text(c) for c in chunk])
            yield from ((c, self._document(c, v)) for c, v in zip(chunk, vectors, strict=True))

    @staticmethod
    def _case(source: dict[str, Any]) -> Case:
        return Case.from_dict({k: v for k, v in source.items() if k not in ("tokens", "cell_category", "vector")})

    # ------------------------------------------------------------ writes
    def _bulk(self, actions: Iterable[dict[str, Any]], index: str) -> int:
        self.ensure()
        done = 0
        errors: list[Any] = []
        stale: list[Any] = []

        def run() -> None:
            nonlocal done
            for ok, item in helpers.streaming_bulk(
                self.client, actions, index=index, chunk_size=self.chunk_size, raise_on_error=False,
                raise_on_exception=True, max_retries=2, initial_backoff=1,
            ):
                status = next(iter(item.values())).get("status")
                if ok:
                    done += 1
                elif status == 409:  # an external version the index holds is newer: this write is stale
                    stale.append(item)
                elif status != 404:
                    errors.append(item)

        self._call("bulk", run)
        if stale:
            log.info("%d writes were older than what the index holds (another worker's, later) and were dropped",
                     len(stale))
        if errors:
            first = next(iter(errors[0].values()))
            raise Unavailable(f"{len(errors)} cases were not indexed; first: {first.get('_id')}: {first.get('error')}")
        return done

    def index(self, cases: Iterable[Case], versions: Mapping[str, int] | None = None, into: str | None = None) -> int:
        actions = ({"_op_type": "index", "_id": case.id, "_source": doc, **_versioned(case.id, versions)}
                   for case, doc in self._documents(cases))
        return self._bulk(actions, into or self.alias)

    def delete(self, case_ids: Sequence[str], versions: Mapping[str, int] | None = None) -> int:
        return self._bulk(({"_op_type": "delete", "_id": case_id, **_versioned(case_id, versions)}
                           for case_id in case_ids), self.alias)

    def refresh(self) -> None:
        self.ensure()
        self._call("refresh", lambda: self.client.indices.refresh(index=self.alias))

    def rebuild(self, store: CaseStore) -> str:
        """Index every case of the store into a new versioned index, then switch the alias atomically.

        Searches keep using the old index until the switch; cases written
        meanwhile stay in the store's outbox and are replayed by the next sync
        (into the new index, which the alias then names).
        """
        old = self.versions()
        number = 1 + max((int(name.rsplit("-v", 1)[1]) for name in old), default=0)
        new = f"{self.alias}-v{number}"
        self._call("create", lambda: self.client.indices.create(index=new))
        try:
            count = self.index(store.iter_cases(), into=new)
            self._call("refresh", lambda: self.client.indices.refresh(index=new))
        except BaseException:
            self._call("cleanup", lambda: self.client.indices.delete(index=new))
            raise
        actions = [{"remove": {"index": name, "alias": self.alias}} for name in old]
        actions.append({"add": {"index": new, "alias": self.alias}})
        self._call("alias switch", lambda: self.client.indices.update_aliases(actions=actions))
        for name in old:
            self._call("drop old", partial(self.client.indices.delete, index=name))
        log.info("rebuilt %s as %s with %d cases", self.alias, new, count)
        return new

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ reads
    def get(self, case_id: str) -> Case:
        self.ensure()
        try:
            found = self._call("get", lambda: self.client.get(index=self.alias, id=case_id,
                                                                   source_excludes=["vector"]))
        except NotFoundError:
            raise NotFound(f"no case with id {case_id!r} in the index") from None
        return self._case(found["_source"])

    def count(self) -> int:
        self.ensure()
        return int(self._call("count", lambda: self.client.count(index=self.alias))["count"])

    def _filters(self, query: CaseQuery) -> dict[str, Any]:
        must: list[dict[str, Any]] = []
        filters: list[dict[str, Any]] = []
        if query.text.strip():
            tokens = self.tokenize(query.text)
            if not tokens:
                raise InvalidInput(f"search text {query.text!r} has no words to look for")
            must.append({"match": {"tokens": {"query": " ".join(tokens), "operator": "and"}}})
        if query.start or query.end:
            bounds = {"gte": format_time(query.start), "lte": format_time(query.end)}
            filters.append({"range": {"received_at": {k: v for k, v in bounds.items() if v}}})
        for field, value in (("district", query.district), ("street", query.street), ("status", query.status),
                             ("channel", query.channel), ("event_id", query.event_id),
                             ("departments", query.department)):
            if value:
                filters.append({"term": {field: value}})
        if query.statuses:
            filters.append({"terms": {"status": list(query.statuses)}})
        if query.category:
            parts = Category.parse(query.category).path.split("/")
            if len(parts) == 1:
                filters.append({"bool": {"should": [{"term": {f"category_l{n}": parts[0]}} for n in (1, 2, 3)],
                                         "minimum_should_match": 1}})
            else:
                filters.extend({"term": {f"category_l{n}": part}} for n, part in enumerate(parts, start=1))
        if query.cell_category:
            filters.append({"term": {"cell_category": query.cell_category}})
        return {"bool": {"must": must or [{"match_all": {}}], "filter": filters}}

    def search(self, query: CaseQuery) -> Page:
        self.ensure()
        if query.offset + query.limit > MAX_WINDOW:
            raise InvalidInput(f"offset + limit must not pass {MAX_WINDOW}; narrow the query by date instead")
        sort: list[Any] = (["_score", {"received_at": "desc"}] if query.text.strip()
                           else [{"received_at": "desc"}, {"id": "asc"}])
        found = self._call("search", lambda: self.client.search(
            index=self.alias, query=self._filters(query), sort=sort, from_=query.offset, size=query.limit,
            track_total_hits=True, source_excludes=["vector"],
        ))
        hits = found["hits"]
        return Page([self._case(h["_source"]) for h in hits["hits"]], int(hits["total"]["value"]))

    def _lookup(self, words: list[str]) -> dict[str, int]:
        """Document frequencies of words, in one request (term vectors of an artificial document)."""
        found = self._call("term statistics", lambda: self.client.termvectors(
            index=self.alias, doc={"tokens": " ".join(words)}, fields=["tokens"],
            term_statistics=True, field_statistics=False, positions=False, offsets=False,
        ))
        terms = found.get("term_vectors", {}).get("tokens", {}).get("terms", {})
        return {t: int(v.get("doc_freq", 0)) for t, v in terms.items()}

    def similar(
        self,
        text: str,
        k: int = 5,
        district: str = "",
        since: datetime | None = None,
        exclude: str = "",
        min_similarity: float = 0.2,
    ) -> list[Neighbour]:
        self.ensure()
        tokens = self.tokenize(text)
        if not tokens:
            return []
        terms = query_terms(tokens, self._doc_freq(tokens), self._count_cached())
        if not terms and self.embedder is None:
            return []
        filters: list[dict[str, Any]] = []
        if district:
            filters.append({"term": {"district": district}})
        if since:
            filters.append({"range": {"received_at": {"gte": format_time(since)}}})
        must_not = [{"ids": {"values": [exclude]}}] if exclude else []
        query = {"bool": {
            "must": [{"more_like_this": {
                "fields": ["tokens"], "like": " ".join(terms), "min_term_freq": 1, "min_doc_freq": 1,
                "max_query_terms": len(terms), "minimum_should_match": "1",
            }}] if terms else [{"match_none": {}}],  # words the index has never seen: meaning alone
            "filter": filters,
            "must_not": must_not,
        }}
        searches: list[dict[str, Any]] = [{}, {"query": query, "size": max(CANDIDATES, 3 * k),
                                               "track_total_hits": False, "_source": ["id", "tokens"]}]
        if self.embedder is not None:  # the nearest vectors, under the same filters, in the same round trip
            knn_filter = {"bool": {"filter": filters, "must_not": must_not}}
            searches += [{}, {"knn": {"field": "vector", "query_vector": self.embedder.encode([text])[0].tolist(),
                                      "k": VECTOR_CANDIDATES, "num_candidates": 4 * VECTOR_CANDIDATES,
                                      "filter": knn_filter},
                              "size": VECTOR_CANDIDATES, "track_total_hits": False, "_source": ["id", "tokens"]}]
        answers = self._call("similar", lambda: self.client.msearch(index=self.alias, searches=searches))["responses"]
        for answer in answers:
            if "error" in answer:
                raise Unavailable(f"Elasticsearch similar-case search failed: {answer['error']}")
        tokens_of = {h["_id"]: h["_source"]["tokens"] for a in answers for h in a["hits"]["hits"]}
        words = [(h["_id"], similarity(terms, h["_source"]["tokens"].split())) for h in answers[0]["hits"]["hits"]]
        # Elasticsearch's cosine score is (1 + cos) / 2.
        meanings = [(h["_id"], 2 * float(h["_score"]) - 1) for h in answers[1]["hits"]["hits"]] \
            if self.embedder is not None else None
        best = fuse(words, meanings, lambda i: similarity(terms, tokens_of[i].split()), k, min_similarity,
                    self.min_meaning)
        if not best:
            return []
        docs = self._call("fetch", lambda: self.client.mget(index=self.alias, ids=[c.case_id for c in best],
                                                            source_excludes=["vector"]))["docs"]
        sources = {d["_id"]: d["_source"] for d in docs if d.get("found")}
        return [neighbour(self._case(sources[c.case_id]), c.similarity, c.meaning) for c in best if c.case_id in sources]

    def counts(self, query: CaseQuery | None = None) -> list[CellCount]:
        self.ensure()
        sources = [
            {"day": {"date_histogram": {"field": "received_at", "calendar_interval": "day", "format": "yyyy-MM-dd"}}},
            {"district": {"terms": {"field": "district", "missing_bucket": True}}},
            {"category": {"terms": {"field": "cell_category", "missing_bucket": True}}},
        ]
        rows: list[CellCount] = []
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"sources": sources, "size": 1000, **({"after": after} if after else {})}
            found = self._call("counts", partial(
                self.client.search, index=self.alias, query=self._filters(query or CaseQuery()), size=0,
                aggs={"cells": {"composite": composite}},
            ))
            agg = found["aggregations"]["cells"]
            for bucket in agg["buckets"]:
                key = bucket["key"]
                rows.append(CellCount(date.fromisoformat(key["day"]), key["district"] or "", key["category"] or "",
                                      int(bucket["doc_count"])))
            after = agg.get("after_key")
            if not agg["buckets"] or not after:
                return sorted(rows)

    def iter_ids(self) -> Iterator[str]:
        """Every indexed case id (for checks and repair)."""
        self.ensure()
        for hit in self._call("scan", lambda: list(helpers.scan(self.client, index=self.alias, _source=False,
                                                               query={"query": {"match_all": {}}}))):
            yield hit["_id"]
