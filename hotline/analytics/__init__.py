"""The supervisors' analytics: what is surging where (hotspots), incidents many callers report (events),
forecasts, and what to do about them before the calls come: the work list, the report and the weekly brief.

Everything here reads the store's kept aggregates (daily counts, word counts, events), never every case of a
period, so each view answers within a second at two million cases a year."""
