"""Statistics to what a reader sees: the printed tables, the figures and report.html.

May import: every stage below it (:mod:`mlm_mia.stats` and what it may import); never
:mod:`mlm_mia.study` or :mod:`mlm_mia.cli`.
"""
