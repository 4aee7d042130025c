"""The pipeline's stages as torch code, for tensors on any device (cuda and mps above all).

The stages take a leading batch dimension: ``(B, M, C)`` points (every image's distinct colors,
padded), ``(B, M)`` int64 counts (0 on padding), ``(B, K, C)`` centroids; one image is a batch
of one. ``histogram`` (batched histograms, coarse cells, exact fixed-point sums), ``nearest``
(direct-difference distances in chunks under one memory budget, exact near-tie re-decisions),
``init`` (k-means++), ``kmeans`` (Lloyd, each image stopping on its own objective), ``fit``
(the coarse-to-fine fit of ``colorquant.Quantizer``), ``remap`` (mapping, the ordered dither,
palette order) and ``pipeline`` (``quantize_batch`` on a GPU, and the fit of
``Quantizer``'s torch route); ``device`` holds the one rule on float64 (none on MPS).

The single-image kernels behind the public stage functions on tensors
(``colorquant.weighted_kmeans``, ``kmeans_plusplus``, ``cell_means``, ``fit_adam``) stay beside
them: they take any float weights in float64 and are held to the compiled CPU kernels.
Importing this package imports torch: nothing on the file path does.
"""
