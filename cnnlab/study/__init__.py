"""The study layer: ``run_study`` (open, one ``with`` block for the study's MLflow run, optimize,
report), the objective, the study's runs in MLflow, workers, and the signals that end them.
"""
