"""The tracking layer: where the stores are and how they are opened, what a training run records
in MLflow, the records of an evaluation, and the plots.
"""
