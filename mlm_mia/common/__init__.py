"""What every stage uses: the one error type (:mod:`errors`), file digests, atomic writes
and folder locks (:mod:`outputs`), stage timing, progress and verbosity (:mod:`progress`), worker processes and the names of the
scores table's columns (:mod:`columns`).

May import: the standard library, numpy and pandas only; nothing else of this package.
"""
