"""The log check: training logs in the formats users have -> series -> findings -> remedies.

Plain Python and numpy; no web framework, no torch (the recorder, which runs inside a user's
training loop, lives in :mod:`gradhealth.recorder`).
"""
