"""Case classifiers and department routing (scikit-learn estimators; a transformers path).

Built on :mod:`hotline`; see the classification issue for what lands here.
"""
