"""Attack scores to statistics: AUC and TPR at low FPR with patient-bootstrap intervals
(:mod:`metrics`), the per-comparison evaluation, per-patient tests, the text-only validity
check, the canary audit, comparisons between runs, and the verdict (:mod:`verdict`) that
sums them up.

May import: :mod:`mlm_mia.common`, :mod:`mlm_mia.settings`, :mod:`mlm_mia.data` and
:mod:`mlm_mia.attacks`. :mod:`metrics` imports nothing of this package, so that an attack
may use it (RMIA tunes its ``a`` by AUC).
"""
