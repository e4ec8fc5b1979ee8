"""The validation split: unchanged for regression, stratified by class when classes are given."""

import numpy as np
import pytest

from nncli.core.preprocess import split_indices, validation_quotas


def _split(classes, fraction, seed=0, shuffle=True):
    classes = np.asarray(classes)
    return split_indices(len(classes), fraction, np.random.default_rng(seed), shuffle, classes)


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_class_of_one_row_goes_to_training(shuffle):
    classes = np.array([0, 0, 0, 1])
    train, val = _split(classes, 0.2, shuffle=shuffle)  # round(0.8): one validation row
    assert len(val) == 1 and classes[val].tolist() == [0]
    assert 3 in train and sorted(np.concatenate([train, val]).tolist()) == [0, 1, 2, 3]


def test_a_class_of_two_rows_has_one_on_each_side():
    classes = np.array([0] * 8 + [1, 1])
    for seed in range(5):
        train, val = _split(classes, 0.2, seed)
        assert np.bincount(classes[val]).tolist() == [1, 1]
        assert np.bincount(classes[train]).tolist() == [7, 1]
    # Without shuffling each class gives its first rows to validation, in file order.
    train, val = _split(classes, 0.2, shuffle=False)
    assert val.tolist() == [0, 8] and train.tolist() == [1, 2, 3, 4, 5, 6, 7, 9]


def test_an_imbalanced_set_is_split_in_proportion():
    counts = [613, 271, 97, 19]
    classes = np.random.default_rng(1).permutation(np.repeat([0, 1, 2, 3], counts))
    train, val = _split(classes, 0.15)
    # 150 rows: ideal shares 91.95, 40.65, 14.55, 2.85 → floors 91, 40, 14, 2; the three rows
    # left go to the largest remainders (.95, .85, .65).
    assert np.bincount(classes[val]).tolist() == [92, 41, 14, 3]
    assert np.bincount(classes[train]).tolist() == [521, 230, 83, 16]
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 1000


def test_class_codes_need_not_be_small_integers():
    classes = np.array(["eel", "cat", "cat", "dog", "cat", "dog", "eel", "cat"])
    train, val = _split(classes, 0.4, shuffle=False)
    assert val.tolist() == [0, 1, 3] and sorted(classes[train].tolist()) == ["cat", "cat", "cat", "dog", "eel"]


def test_one_row_each_side_outranks_proportion():
    # 4 validation rows; proportion alone would give the big class 2 and each small class 0 or 1.
    assert validation_quotas(np.array([10, 2, 2, 2]), 4).tolist() == [1, 1, 1, 1]
    assert validation_quotas(np.array([97, 2, 1]), 10).tolist() == [9, 1, 0]


@pytest.mark.parametrize("seed", range(20))
def test_quotas_add_up_and_keep_every_class_on_both_sides(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, size=rng.integers(1, 8))
    shared = counts >= 2
    # Anywhere from one row per shared class to all but one row per class.
    n_validation = int(rng.integers(shared.sum(), counts.sum() - len(counts) + 1))
    quotas = validation_quotas(counts, n_validation)
    assert quotas.sum() == n_validation
    if n_validation:
        assert (quotas[shared] >= 1).all() and (quotas[~shared] == 0).all()
    assert (counts - quotas >= 1).all()


def test_the_same_seed_gives_the_same_split_and_draws_as_much_as_before():
    classes = np.random.default_rng(2).integers(0, 3, 200)
    rng_a, rng_b, rng_plain = (np.random.default_rng(7) for _ in range(3))
    a = split_indices(200, 0.25, rng_a, True, classes)
    b = split_indices(200, 0.25, rng_b, True, classes)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], _split(classes, 0.25, seed=8)[1])
    split_indices(200, 0.25, rng_plain, True)
    assert rng_a.bit_generator.state == rng_plain.bit_generator.state  # later draws are unchanged


def test_both_parts_keep_the_order_the_rows_were_drawn_in():
    classes = np.random.default_rng(3).integers(0, 4, 50)
    order = np.random.default_rng(5).permutation(50)
    train, val = _split(classes, 0.3, seed=5)
    position = np.argsort(order)  # where each row sits in the drawn order
    assert (np.diff(position[train]) > 0).all() and (np.diff(position[val]) > 0).all()
    train, val = _split(classes, 0.3, shuffle=False)
    assert (np.diff(train) > 0).all() and (np.diff(val) > 0).all()


@pytest.mark.parametrize("n, fraction, seed, shuffle", [(10, 0.3, 0, True), (10, 0.3, 0, False), (157, 0.2, 42, True), (5, 0.0, 1, True)])
def test_without_classes_the_split_is_what_it_always_was(n, fraction, seed, shuffle):
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    n_validation = round(n * fraction)
    train, val = split_indices(n, fraction, np.random.default_rng(seed), shuffle)
    assert train.tolist() == order[n_validation:].tolist() and val.tolist() == order[:n_validation].tolist()


def test_too_few_validation_rows_for_every_class_go_to_the_largest_classes():
    codes = np.array([2, 0, 1, 1, 2, 2, 0, 1, 2])  # class 2 has 4 rows, class 1 three, class 0 two
    train, val = _split(codes.tolist(), 0.2)  # round(1.8) = 2 validation rows
    assert sorted(codes[val].tolist()) == [1, 2] and sorted(set(codes[train].tolist())) == [0, 1, 2]
    assert validation_quotas(np.array([2, 3, 4]), 1).tolist() == [0, 0, 1]


def test_too_few_training_rows_for_the_classes_is_an_error():
    with pytest.raises(ValueError, match=r"a validation split of 3 of 4 rows leaves 1 training rows for 2 classes"):
        _split([0, 0, 1, 1], 0.75)
    with pytest.raises(ValueError, match="one class per row"):
        split_indices(4, 0.5, np.random.default_rng(0), True, np.array([0, 1, 0]))


def test_no_validation_rows_is_no_validation_not_an_error():
    train, val = _split([0, 1, 2, 2], 0.1)  # round(0.4) = 0
    assert len(val) == 0 and sorted(train.tolist()) == [0, 1, 2, 3]
