"""The tests, laid out as the package is: tests/spec/ tests cnnlab/spec/, and so on; shared
helpers in tests/studies.py (`from tests.studies import ...`)."""
