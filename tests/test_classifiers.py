"""The category classifier as an estimator: scikit-learn's contract, calibrated, explainable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.svm import LinearSVC

from classifiers.features import SparseRow
from classifiers.linear import HierarchicalClassifier, NBLinearSVC, TextClassifier
from classifiers.similar import SimilarCases
from hotline.errors import InvalidInput
from hotline.text.transcript import caller_account


@pytest.fixture(scope="module")
def data(demo: tuple[list[dict[str, Any]], Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = demo[0][:4000]
    texts = [caller_account(r["transcript"]) for r in rows]
    return texts, np.array([r["category_l1"] for r in rows]), np.array([f"{r['category_l1']}/{r['category_l2']}" for r in rows])


@pytest.fixture(scope="module")
def fitted(data: tuple) -> tuple[TextClassifier, list[str], np.ndarray]:
    texts, _, paths = data
    train_x, test_x, train_y, test_y = train_test_split(texts, paths, test_size=0.25, random_state=0)
    return TextClassifier(hierarchical=True).fit(train_x, train_y), test_x, test_y


def test_follows_the_estimator_contract() -> None:
    model = TextClassifier(C=2.0, hierarchical=True)
    assert model.get_params()["C"] == 2.0
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(model, "classes_")


def test_hierarchical_model_learns_second_level_categories(fitted: tuple) -> None:
    model, test_x, test_y = fitted
    accuracy = float(np.mean(model.predict(test_x) == test_y))
    assert accuracy > 0.75
    proba = model.predict_proba(test_x[:50])
    assert proba.shape == (50, len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_probabilities_are_calibrated(fitted: tuple) -> None:
    """Confidence means what it says: expected calibration error under 0.08, and a confident share that is right."""
    model, test_x, test_y = fitted
    proba = model.predict_proba(test_x)
    confidence = proba.max(axis=1)
    right = model.classes_[proba.argmax(axis=1)] == np.asarray(test_y)
    ece = sum(
        np.mean(in_bin) * abs(right[in_bin].mean() - confidence[in_bin].mean())
        for low in np.arange(0.0, 1.0, 0.1)
        if (in_bin := (confidence >= low) & (confidence < low + 0.1)).any()
    )
    assert ece < 0.08
    confident = confidence >= 0.9
    assert confident.mean() > 0.3 and right[confident].mean() >= 0.9


def test_explain_names_the_words_behind_a_label(fitted: tuple) -> None:
    model, _, _ = fitted
    terms = model.explain("我们小区停水三天了，水龙头一点水都没有", "城乡建设/供水")
    assert terms and any("水" in term for term, _ in terms)
    assert all(weight > 0 for _, weight in terms)
    # "停水" is both a word and a character bigram: the agent reads it once, with both pushes added.
    names = [term for term, _ in model.explain("我们小区停水三天了，水龙头一点水都没有", "城乡建设/供水", k=10**6)]
    assert len(names) == len(set(names)) and "停水" in names


def test_one_text_path_gives_the_batch_path_s_answers(fitted: tuple, data: tuple) -> None:
    """Routing one case skips scikit-learn's batch machinery; features, probabilities, reasons and similar cases
    must stay exactly those of the batch path."""
    model, test_x, _ = fitted
    matrix = model.transform_texts(test_x[:200]).tocsr()
    for i, text in enumerate(test_x[:200]):
        row = model.transform_row(text)
        batch = SparseRow.from_matrix(matrix[i])
        np.testing.assert_array_equal(row.indices, batch.indices)
        np.testing.assert_allclose(row.data, batch.data, rtol=1e-5)
        np.testing.assert_allclose(model.model_.predict_proba(row), model.model_.predict_proba(matrix[i]), atol=1e-6)
        label = model.classes_[int(np.argmax(model.model_.predict_proba(row)))]
        # Every positive term (no cut at k, where float32 ties could pick different terms), the same weights.
        fast, batch_terms = dict(model.explain_row(row, label, k=10**6)), dict(model.explain_row(matrix[i], label, k=10**6))
        assert fast.keys() == batch_terms.keys()
        np.testing.assert_allclose([fast[t] for t in fast], [batch_terms[t] for t in fast], rtol=1e-4)
    unknown = model.transform_row("㐀㐁㐂")  # characters the model never saw
    np.testing.assert_allclose(model.model_.predict_proba(unknown), model.model_.predict_proba(
        model.transform_texts(["㐀㐁㐂"])), atol=1e-6)
    batch = model.predict_proba(test_x[:20])  # one text at a time (the row path) gives the batch's answers
    np.testing.assert_allclose(np.vstack([model.predict_proba([t]) for t in test_x[:20]]), batch, atol=1e-6)

    texts = data[0][:1500]
    index = SimilarCases().fit(texts, ids=[f"c{i}" for i in range(len(texts))], departments=[("住建局",)] * len(texts))
    for text in test_x[:50]:
        query = index.vectorizer_.transform([text]).tocsr()
        scores = np.asarray(index.matrix_[:, query.indices] @ query.data).ravel()
        expected = [f"c{i}" for i in np.argsort(-scores, kind="stable")[:5] if scores[i] >= index.min_similarity]
        assert [n.case_id for n in index.similar(text, k=5)] == expected


@pytest.mark.parametrize("n_classes", [2, 4])
def test_nb_scaled_svm_folds_its_scaling_into_the_weights(data: tuple, n_classes: int) -> None:
    """Each class's naive-Bayes scaling lives in its weights: scores are one product, as for a plain SVM, and
    the model beats a plain SVM's accuracy on held-out texts (or ties)."""
    texts, level1, _ = data
    keep = np.isin(level1, np.unique(level1)[:n_classes])
    X = TfidfVectorizer(analyzer="char", ngram_range=(1, 2)).fit_transform(np.asarray(texts)[keep])
    y = level1[keep]
    model = NBLinearSVC().fit(X[:-300], y[:-300])
    scores = model.decision_function(X[-300:])
    assert scores.shape == ((300,) if n_classes == 2 else (300, n_classes))
    assert model.coef_.shape == (1 if n_classes == 2 else n_classes, X.shape[1])
    assert set(model.predict(X[-300:])) <= set(model.classes_)
    plain = LinearSVC(C=0.5, class_weight="balanced").fit(X[:-300], y[:-300])
    assert np.mean(model.predict(X[-300:]) == y[-300:]) >= np.mean(plain.predict(X[-300:]) == y[-300:]) - 0.02


def test_flat_model_on_first_level(data: tuple) -> None:
    texts, level1, _ = data
    model = TextClassifier().fit(texts[:2000], level1[:2000])
    assert np.mean(model.predict(texts[2000:2500]) == level1[2000:2500]) > 0.85


@pytest.mark.parametrize("bad", [["停水了", ""], ["  "], "一个字符串", [None], 5])
def test_empty_or_wrong_input_is_a_clear_error(fitted: tuple, bad: Any) -> None:
    model, _, _ = fitted
    with pytest.raises(InvalidInput):
        model.predict(bad)


def test_training_errors_name_the_problem() -> None:
    with pytest.raises(InvalidInput, match="two classes"):
        TextClassifier().fit(["停水了", "停电了"], ["a", "a"])
    with pytest.raises(InvalidInput, match="texts but y has"):
        TextClassifier().fit(["停水了", "停电了"], ["a"])
    with pytest.raises(InvalidInput, match="only one example"):
        TextClassifier().fit(["停水了", "停水了吗", "停电了"], ["a", "a", "b"])
    with pytest.raises(InvalidInput, match="empty"):
        TextClassifier().fit(["停水了", "停电了"], ["a", ""])


def test_hierarchical_classifier_handles_single_child_parents() -> None:
    from scipy import sparse

    X = sparse.csr_matrix(np.eye(6))
    y = np.array(["a/x", "a/x", "b/y", "b/z", "b/y", "b/z"], dtype=object)
    model = HierarchicalClassifier().fit(sparse.vstack([X] * 3).tocsr(), np.concatenate([y] * 3))
    assert list(model.classes_) == ["a/x", "b/y", "b/z"]
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)


def test_linear_scores_are_the_dense_product_for_sparse_and_dense_input() -> None:
    from scipy import sparse

    from classifiers.linear import linear_scores

    rng = np.random.default_rng(0)
    X = sparse.random(5, 300, density=0.05, format="csr", random_state=1)
    for classes in (1, 7):  # a binary SVM has one weight row
        coef, intercept = rng.normal(size=(classes, 300)), rng.normal(size=classes)
        expected = X.toarray() @ coef.T + intercept
        np.testing.assert_allclose(linear_scores(X, coef, intercept), expected)
        np.testing.assert_allclose(linear_scores(X.toarray(), coef, intercept), expected)
        assert linear_scores(X[:0], coef, intercept).shape == (0, classes)
