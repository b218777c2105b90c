import numpy as np
import pytest

from mlm_mia import metrics

Y = [1, 1, 0, 0]
S = [0.9, 0.4, 0.5, 0.1]


def test_auc_by_hand():
    # pairs (member, non-member): (0.9,0.5) (0.9,0.1) (0.4,0.1) won, (0.4,0.5) lost -> 3/4
    assert metrics.auc(Y, S) == 0.75
    assert metrics.auc([1, 0], [0.3, 0.3]) == 0.5  # a tie counts one half


def test_tpr_at_fpr_by_hand():
    assert metrics.tpr_at_fpr(Y, S, 0.0) == 0.5  # only 0.9 is above every non-member
    assert metrics.tpr_at_fpr(Y, S, 0.49) == 0.5
    assert metrics.tpr_at_fpr(Y, S, 0.5) == 1.0


def test_threshold_is_set_on_the_non_members():
    y = [1] * 10 + [0] * 10
    s = list(range(10, 20)) + list(range(0, 10))  # members 10..19, non-members 0..9
    assert metrics.threshold_at_fpr(y, s, 0.1) == 9  # one false positive of ten
    assert metrics.threshold_at_fpr(Y, S, 0.5) == 0.4


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
    assert set(result["tpr_at_fpr"]) == {"0.001", "0.01", "0.1"}
    assert result["auc_ci"][0] <= result["auc"] <= result["auc_ci"][1]
    assert result["recall"] == result["tpr_at_fpr"]["0.1"]


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
