"""The pipeline's stages as torch code, for tensors on any device (cuda and mps above all).

Each module mirrors a stage module of the package (``histogram``, ``init``, ``kmeans``,
``nearest``) and its CPU kernel in :mod:`colorquant._cpu`; the stage modules dispatch here for
tensors, and the tests hold both to the same float64 brute force. Importing this package
imports torch: nothing on the file path does.
"""
