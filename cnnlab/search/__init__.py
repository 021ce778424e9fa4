"""The search layer: study files and study scripts (``StudyConfig``), the search space as data
(or a script's search function), the samplers and pruners built from them, and a trial's outcome
in the study's books.
"""
