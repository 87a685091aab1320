"""The analysis core: spec -> model -> simulation -> findings -> remedies.

Plain Python and PyTorch; nothing here imports a web framework, so the HTTP API,
the worker and the command line all call the same code.
"""
