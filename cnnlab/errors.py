"""cnnlab's errors: each is a bad input that the command line reports in one sentence."""


class CnnlabError(ValueError):
    """Bad input (architecture, data, configuration); the message names the culprit."""


class ArchitectureError(CnnlabError):
    """An architecture that cannot be built (or is over a budget); the message says why."""


class DataError(CnnlabError):
    """MNIST could not be read, or what was read is not MNIST, or a file that a store records
    is missing; the message names the file."""


class ConfigError(CnnlabError):
    """A configuration value or file that is wrong; the message names the key."""


class EvaluationRefusedError(CnnlabError):
    """The study's test set has been looked at already (or is being looked at)."""
