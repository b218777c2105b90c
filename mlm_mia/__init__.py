"""Membership inference against masked language models trained on clinical notes."""

__version__ = "0.1.0"
