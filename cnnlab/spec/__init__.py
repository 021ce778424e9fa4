"""The spec layer: pure arithmetic (shapes, parameter counts, MACs, the notebook's convolution,
fronts, rankings) and the trial spec. It imports no framework; everything above builds on it.
"""
