"""The tracking layer: where the stores are and how they are opened, what a training run records
in MLflow, the records of an evaluation, and the plots.
"""

import logging

# MLflow says, at INFO, that it creates a new SQLite store's tables ("Creating initial MLflow
# database tables...", "Updating database tables"): two lines on the first command over a store,
# about a store cnnlab makes itself. Its warnings and errors still come through. Set here, where
# every module that opens a store is imported from, before MLflow itself is imported.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def _not_reraised(record: logging.LogRecord) -> bool:
    """MLflow logs every database error of a session with its traceback ("SQLAlchemy database
    error. The following exception is caught.") and then raises it; the command says it in one
    sentence (``cnnlab.tracking.preflight.store_fault``), or shows the traceback once."""
    return not str(record.msg).startswith("SQLAlchemy database error")


logging.getLogger("mlflow.store.db.utils").addFilter(_not_reraised)
