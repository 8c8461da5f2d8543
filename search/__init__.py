"""Search backends behind one protocol: the embedded SQLite index and Elasticsearch.

The embedded full-text search over the store (:mod:`hotline.store.sqlite`) is
what exists today; the protocol and the Elasticsearch backend land here.
"""
