"""Sentence sets to per-token log-probabilities: loading a local model folder, the one
PLL engine (minicons' definitions, batched), the per-sentence score cache and sharding
across ``torchrun`` processes.

May import: :mod:`mlm_mia.common`, :mod:`mlm_mia.settings` and :mod:`mlm_mia.data`.
"""
