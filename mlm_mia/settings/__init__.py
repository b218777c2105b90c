"""The settings of a run, parsed once at the edge: the flags' checks and defaults
(:mod:`flags`), shared by every script and YAML file that takes the flag.

May import: :mod:`mlm_mia.common`.
"""
