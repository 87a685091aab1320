"""The open scorecard of the log check (issue 9): a labelled corpus of small real training runs
(:mod:`scorecard.corpus`), the AUTOTRAINER rule set as a baseline (:mod:`scorecard.autotrainer`)
and the table that scores both (:mod:`scorecard.score`). Run it with ``./dev scorecard``.
"""
