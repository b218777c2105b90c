import numpy as np
import pytest

from mlm_mia.stats import metrics

Y = [1, 1, 0, 0]
S = [0.9, 0.4, 0.5, 0.1]


def test_auc_by_hand():
    # pairs (member, non-member): (0.9,0.5) (0.9,0.1) (0.4,0.1) won, (0.4,0.5) lost -> 3/4
    assert metrics.auc(Y, S) == 0.75
    assert metrics.auc([1, 0], [0.3, 0.3]) == 0.5  # a tie counts one half


def test_tpr_at_fpr_by_hand():
    # FPR strictly below the target: 0.9 alone is above every non-member; at 0.4 one of the
    # two non-members (0.5) is above, FPR 0.5, which is below 0.51 only
    assert metrics.tpr_at_fpr(Y, S, 0.49) == 0.5
    assert metrics.tpr_at_fpr(Y, S, 0.5) == 0.5
    assert metrics.tpr_at_fpr(Y, S, 0.51) == 1.0
    with pytest.raises(ValueError, match="above 0"):
        metrics.tpr_at_fpr(Y, S, 0.0)


def test_threshold_is_set_on_the_non_members():
    y = [1] * 10 + [0] * 10
    s = list(range(10, 20)) + list(range(0, 10))  # members 10..19, non-members 0..9
    assert metrics.threshold_at_fpr(y, s, 0.1) == 10  # FPR below 1/10: no false positive
    assert metrics.threshold_at_fpr(y, s, 0.11) == 9  # one of ten
    assert metrics.threshold_at_fpr(Y, S, 0.5) == 0.9
    assert metrics.threshold_at_fpr(Y, S, 0.51) == 0.4


def test_precision_recall_f1_by_hand():
    # at 0.4: predicted members 0.9, 0.5, 0.4 -> 2 true of 3; both members found
    precision, recall, f1 = metrics.precision_recall_f1(Y, S, 0.4)
    assert (precision, recall) == (pytest.approx(2 / 3), 1.0)
    assert f1 == pytest.approx(0.8)


def test_evaluate_reports_counts_and_unresolvable_fprs():
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(30), np.zeros(50)].astype(int)
    s = np.r_[rng.normal(1, 1, 30), rng.normal(0, 1, 50)]
    result = metrics.evaluate(y, s, groups=np.arange(80), n_boot=50)
    assert (result["n_pos"], result["n_neg"]) == (30, 50)
    assert result["fpr_below_resolution"] == ["0.001", "0.01"]  # 1/50 = 0.02
    assert result["tpr_at_fpr_convention"] == metrics.TPR_CONVENTION
    assert set(result["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
    assert result["auc_ci"][0] <= result["auc"] <= result["auc_ci"][1]
    assert result["recall"] == result["tpr_at_fpr"]["0.1"]


def test_a_target_of_one_over_n_rests_on_no_false_positive():
    # 100 non-members 0..99, 100 members 50.5..149.5: at 1% = 1/100 no false positive
    # is allowed (FPR 0.01 is not below 0.01), at 2% one
    y = np.r_[np.zeros(100), np.ones(100)].astype(int)
    s = np.r_[np.arange(100), np.arange(100) + 50.5]
    assert metrics.tpr_at_fpr(y, s, 0.01) == 0.51  # members above 99
    assert metrics.tpr_at_fpr(y, s, 0.02) == 0.52  # above 98: one false positive
    result = metrics.evaluate(y, s, fprs=(0.005, 0.01, 0.02))
    assert result["fpr_below_resolution"] == ["0.005", "0.01"]


def test_bootstrap_resamples_patients_not_sentences():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(40), 25)  # 40 patients, 25 identical-ish sentences each
    y = (patients < 20).astype(int)
    s = np.repeat(rng.normal(0, 1, 40), 25) + 0.5 * y + rng.normal(0, 0.01, patients.size)
    by_patient = metrics.bootstrap_ci(y, s, patients, n_boot=300, seed=0)
    by_sentence = metrics.bootstrap_ci(y, s, np.arange(patients.size), n_boot=300, seed=0)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(by_patient["auc"]) > 3 * width(by_sentence["auc"])
    assert by_patient == metrics.bootstrap_ci(y, s, patients, n_boot=300, seed=0)


@pytest.mark.parametrize("y, s, message", [
    ([1, 1], [0.1, 0.2], "one class"),
    ([1, 0], [0.1, float("nan")], "NaN"),
    ([1, 0, 1], [0.1, 0.2], "differ in length"),
    ([1, 2], [0.1, 0.2], "0 \\(non-member\\) or 1"),
])
def test_invalid_inputs_are_rejected(y, s, message):
    with pytest.raises(ValueError, match=message):
        metrics.auc(y, s)


def random_case(seed: int, structure: str = "patients"):
    """Scores with many ties (rounded); patients of several sentences each, one sentence
    each ("singles") or a few large patients ("large")."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 400))
    y = (rng.random(n) < 0.5).astype(int)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=n) + 0.6 * y, int(rng.integers(0, 3)))
    groups = {"patients": rng.integers(0, max(2, n // 6), n), "singles": np.arange(n),
              "large": rng.integers(0, 3, n)}[structure]
    return y, s, groups


def lira_tpr(y, s, target: float, **curve) -> float:
    """TPR at FPR as LiRA's research/mi_lira_2021/plot.py and MIMIR compute it."""
    from sklearn.metrics import roc_curve
    fpr, tpr, _ = roc_curve(y, s, **curve)
    return tpr[np.where(fpr < target)[0][-1]]


def test_curves_equal_scikit_learn_and_the_lira_formula_with_ties():
    from sklearn.metrics import roc_auc_score, roc_curve
    for seed in range(30):
        y, s, _ = random_case(seed)
        fprs, tprs, thresholds = roc_curve(y, s, drop_intermediate=False)
        assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-14)
        n = (y == 0).sum()
        # k / n: targets an FPR on the curve equals exactly
        for f in (0.001, 0.01, 0.1, 0.25, 1.0, 1 / n, 2 / n, 3 / n, 10 / n):
            # every point of the curve: scikit-learn's default drops the inner points of
            # straight runs, which ties make, and the formula can then land below one
            assert metrics.tpr_at_fpr(y, s, f) == lira_tpr(y, s, f, drop_intermediate=False)
            assert metrics.threshold_at_fpr(y, s, f) == thresholds[fprs < f][-1]
            if seed < 5:  # without ties, the formula exactly as LiRA and MIMIR call it
                distinct = s + np.arange(s.size) * 1e-9
                assert metrics.tpr_at_fpr(y, distinct, f) == lira_tpr(y, distinct, f)
        got = metrics.roc_points(y, s)
        np.testing.assert_array_equal(got[0], fprs)
        np.testing.assert_array_equal(got[1], tprs)


@pytest.mark.parametrize("structure, chunk", [("patients", None), ("singles", None), ("large", None),
                                              ("singles", 1000)])
def test_bootstrap_equals_resampling_the_rows_one_resample_at_a_time(structure, chunk, monkeypatch):
    """The reference computation: each resample's rows materialised (every drawn patient's
    sentences repeated as often as it is drawn, members' and non-members' patients drawn
    apart, in the same order of draws) and scikit-learn's curve on them; ``chunk`` small
    enough that the resamples go through the core a few at a time."""
    from sklearn.metrics import roc_auc_score, roc_curve
    if chunk:
        monkeypatch.setattr(metrics, "_CHUNK", chunk)
    for seed in range(3):
        y, s, groups = random_case(seed, structure)
        rng = np.random.default_rng(seed)
        rows, group = {}, {}
        for label in (0, 1):
            rows[label] = np.flatnonzero(y == label)
            group[label] = np.unique(groups[rows[label]], return_inverse=True)[1]
        expected = {"auc": [], **{f: [] for f in metrics.FPR_TARGETS}}
        for _ in range(30):
            drawn = {}
            for label in (0, 1):
                n_groups = group[label].max() + 1
                drawn[label] = np.bincount(rng.integers(n_groups, size=n_groups), minlength=n_groups)
            index = np.concatenate([np.repeat(rows[c], drawn[c][group[c]]) for c in (0, 1)])
            fprs, tprs, _ = roc_curve(y[index], s[index], drop_intermediate=False)
            expected["auc"].append(roc_auc_score(y[index], s[index]))
            for f in metrics.FPR_TARGETS:
                expected[f].append(tprs[np.where(fprs < f)[0][-1]])
        got = metrics.bootstrap(y, s, metrics.resample(y, groups, 30, seed))
        np.testing.assert_allclose(got["auc"], expected["auc"], rtol=0, atol=1e-14)
        for f in metrics.FPR_TARGETS:
            np.testing.assert_array_equal(got[f"tpr@{f}"], expected[f])


def test_attacks_of_one_comparison_share_their_resamples():
    y, s, groups = random_case(3)
    together = metrics.evaluate_all(y, {"a": s, "b": -s}, groups, n_boot=100, seed=2)
    assert together["a"] == metrics.evaluate(y, s, groups, n_boot=100, seed=2)
    assert together["b"]["auc_ci"] == pytest.approx([1 - v for v in together["a"]["auc_ci"][::-1]])
