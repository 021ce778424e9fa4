"""The training layer: MNIST, the Keras model, fitting one spec, the Keras callbacks and the live
progress line. No tracking: callers hand in what happens at an epoch's end.
"""
