"""The search layer: study files (``StudyConfig``), the search space as data, the samplers and
pruners built from them, and a trial's outcome in the study's books.
"""
