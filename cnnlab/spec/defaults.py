"""The notebook's training defaults, in one place (no framework imported here): the study file
reader, the command line, ``TrainConfig`` and the model builder all take them from here."""

EPOCHS = 10
BATCH_SIZE = 256
OPTIMIZER = "rmsprop"
LOSS = "categorical_crossentropy"
METRICS = ("accuracy",)
BN_MOMENTUM = 0.99
"""Keras's BatchNormalization momentum (``keras.layers.BatchNormalization(momentum=0.99)``)."""
