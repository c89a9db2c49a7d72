"""Benchmarking: model, end-to-end, training and data-pipeline speed (:mod:`.speed`), and medico's defaults timed
against plain eager PyTorch and peer implementations in one process (:mod:`.peers`)."""
