"""Demo data: a generator of realistic 12345 calls with ground truth."""
