"""The pipeline of one study, as score_MIA.py runs it: plan, demo data, models, scores,
attacks, statistics, outputs, and the run's context (:mod:`context`).

May import: every stage below it; never :mod:`mlm_mia.cli`.
"""
