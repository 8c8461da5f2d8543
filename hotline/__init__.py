"""hotline: the intelligence and proactive-service engine behind a 12345 hotline.

This package is the domain core (case model, text pipeline, places, taxonomy,
store, demo data, CLI). The other top-level packages (``classifiers``,
``search``, ``training``, ``api``) build on it; it imports none of them.
"""

__version__ = "0.1.0"
