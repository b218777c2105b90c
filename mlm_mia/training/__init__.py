"""Models trained here: the tiny RoBERTa models of the demo and the tests, training
recipes, and the shadow models of LiRA / RMIA / EncoderMI-V (planned, locked, recorded).

May import: :mod:`mlm_mia.common`, :mod:`mlm_mia.settings`, :mod:`mlm_mia.data` and
:mod:`mlm_mia.engine`.
"""
