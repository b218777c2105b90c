"""Sources to sentence sets: the readers of the real note formats (MIMIC-III NOTEEVENTS
CSVs, n2c2 2014 XML), sentence splitting and cleaning, the patient-level sampling of
members, non-members, externals and the population, canaries, the synthetic corpus in the
real formats, and the sets' files (:mod:`prepare` is prepare_data_MIA.py's job).

May import: :mod:`mlm_mia.common` and :mod:`mlm_mia.settings`.
"""
