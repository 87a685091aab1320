"""The torch-free vocabulary both checks speak: the document, the catalog, remedies and rules.

Nothing here imports torch or the simulator, so the API process, the log check and every CLI
command that does not simulate can use it without loading torch.
"""
