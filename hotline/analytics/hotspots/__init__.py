"""Hotspots: surging (area, category) cells, clusters across neighbouring areas, emerging words, forecasts.

Every detector is prospective: the statistic for day D uses only counts up
to the end of D, so what it would have said on D is what it says now.
"""
