"""The command-line layer: the three scripts' argument parsers, which turn flags and YAML
files into settings and call the stages.

May import: anything of this package; nothing of this package imports it.
"""
