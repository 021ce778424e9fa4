"""The results layer, after a study: confirmation over seeds, the one look at the test set, and
studies as pandas DataFrames.
"""
