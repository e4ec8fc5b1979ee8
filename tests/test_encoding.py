"""The feature encoding: one-hot categories, fills from the training rows, the JSON a model file keeps."""

import numpy as np
import pytest

from nncli.core.encoding import (
    UNKNOWN,
    Encoding,
    FeatureColumn,
    MissingCell,
    NothingToFill,
    UnknownCategory,
    category_codes,
)

NAN = np.nan


def mixed(missing="mean", unknown="error"):
    # x numeric, colour over ("blue", "green", "red"), y numeric
    train = np.array([[1.0, 0, 10], [NAN, 2, 20], [3, NAN, 30], [5, 2, NAN], [6, 1, 40]])
    return Encoding.fit(["x", "colour", "y"], [None, ("blue", "green", "red"), None], train, missing, unknown), train


def test_fills_are_taken_from_the_training_rows_per_strategy():
    assert [c.fill for c in mixed("mean")[0].columns] == [3.75, 2.0, 25.0]
    assert [c.fill for c in mixed("median")[0].columns] == [4.0, 2.0, 25.0]
    # most_frequent: ties go to the smallest value (numbers) or the first category
    assert [c.fill for c in mixed("most_frequent")[0].columns] == [1.0, 2.0, 10.0]
    assert [c.fill for c in mixed("error")[0].columns] == [None, None, None]
    assert [c.fill for c in mixed("drop_rows")[0].columns] == [None, None, None]


def test_encode_one_hots_categories_and_fills_missing_cells():
    encoding, train = mixed("mean")
    assert encoding.width == 5
    assert encoding.input_names == ["x", "colour=blue", "colour=green", "colour=red", "y"]
    assert encoding.one_hot_inputs().tolist() == [False, True, True, True, False]
    X = encoding.encode(train, np.float32)
    assert X.dtype == np.float32
    expected = [[1, 1, 0, 0, 10], [3.75, 0, 0, 1, 20], [3, 0, 0, 1, 30], [5, 0, 0, 1, 25], [6, 0, 1, 0, 40]]
    np.testing.assert_array_equal(X, np.array(expected, dtype=np.float32))


def test_a_missing_cell_without_fill_names_its_row_and_column():
    encoding, train = mixed("error")
    with pytest.raises(MissingCell) as caught:
        encoding.encode(train)
    assert (caught.value.row, caught.value.column) == (1, 0)


def test_unknown_categories_are_refused_or_all_zeros():
    raw = np.array([[1.0, 0, 1], [2, UNKNOWN, 2]])
    with pytest.raises(UnknownCategory) as caught:
        mixed("mean", "error")[0].encode(raw)
    assert (caught.value.row, caught.value.column) == (1, 1)
    X = mixed("mean", "ignore")[0].encode(raw)
    np.testing.assert_array_equal(X[1], [2, 0, 0, 0, 2])


def test_a_column_with_no_training_value_cannot_be_filled():
    with pytest.raises(NothingToFill) as caught:
        Encoding.fit(["a", "b"], [None, None], np.array([[1.0, NAN], [2, NAN]]), "median")
    assert caught.value.column == 1


def test_numeric_encoding_is_plain_and_old_models_mean_it():
    plain = Encoding.numeric(["a", "b"])
    assert plain.is_plain and plain.width == 2
    assert not mixed("mean")[0].is_plain
    assert not Encoding((FeatureColumn("a", None, 0.0),)).is_plain  # a fill changes the inputs


def test_category_codes_map_a_parse_onto_the_models_categories():
    # the parse numbered its distinct values in order of appearance; NaN = missing
    codes = np.array([0, 1, 2, NAN, 1])
    mapped = category_codes(("blue", "red"), ["red", "mauve", "blue"], codes)
    np.testing.assert_array_equal(mapped, [1, UNKNOWN, 0, NAN, UNKNOWN])


def test_json_round_trip():
    encoding = Encoding.fit(["x", "c"], [None, ("a", "b")], np.array([[1.0, 0], [2, 1], [3, 1]]), "median", "ignore", ["", "?"])
    assert Encoding.from_json(encoding.to_json()) == encoding
    assert encoding.to_json()["missing_values"] == ["", "?"]


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.pop("columns"),
        lambda d: d.update(missing="zero"),
        lambda d: d.update(unknown_category="warn"),
        lambda d: d.update(missing_values=[1]),
        lambda d: d["columns"][0].update(name=3),
        lambda d: d["columns"][0].update(fill="1"),
        lambda d: d["columns"][0].update(fill=float("inf")),
        lambda d: d["columns"][0].update(fill=True),
        lambda d: d["columns"][1].update(categories=[]),
        lambda d: d["columns"][1].update(categories=["a", "a"]),
        lambda d: d["columns"][1].update(categories=["a", 2]),
        lambda d: d["columns"][1].update(fill=2),  # not one of its two categories
        lambda d: d["columns"][1].update(fill=0.5),
        lambda d: d["columns"][1].update(extra=1),
    ],
)
def test_malformed_json_is_refused(change):
    data = Encoding.fit(["x", "c"], [None, ("a", "b")], np.array([[1.0, 0], [2, 1]]), "mean").to_json()
    change(data)
    with pytest.raises(ValueError):
        Encoding.from_json(data)


def test_the_first_problem_reported_is_the_first_in_the_file():
    encoding = Encoding.fit(["a", "b", "c"], [None, ("p", "q"), None], np.array([[1.0, 0, 1]]), "error")
    raw = np.array([[1.0, 0, 1], [2, 1, NAN], [NAN, 0, 3]])
    with pytest.raises(MissingCell) as caught:
        encoding.encode(raw)
    assert (caught.value.row, caught.value.column) == (1, 2)
    with pytest.raises(UnknownCategory) as caught:
        encoding.encode(np.array([[1.0, 0, 1], [2, UNKNOWN, 1]]))
    assert (caught.value.row, caught.value.column) == (1, 1)


def test_numeric_runs_copy_in_blocks_and_fill_per_column():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(50, 6))
    raw[rng.random(raw.shape) < 0.2] = NAN
    raw[:, 3] = rng.integers(0, 3, size=50)
    names, categories = list("abcdef"), [None, None, None, ("x", "y", "z"), None, None]
    encoding = Encoding.fit(names, categories, raw, "median")
    X = encoding.encode(raw)
    for j, column in enumerate([0, 1, 2, None, 6, 7]):
        if column is None:
            continue
        expected = np.where(np.isnan(raw[:, j]), encoding.columns[j].fill, raw[:, j])
        np.testing.assert_array_equal(X[:, column], expected)
    np.testing.assert_array_equal(X[:, 3:6].argmax(axis=1), raw[:, 3])
    assert (X[:, 3:6].sum(axis=1) == 1).all()
