"""The pipeline of one study, as score_MIA.py runs it: plan, demo data, models, scores,
attacks, statistics, outputs.

May import: every stage below it; never :mod:`mlm_mia.cli`.
"""
