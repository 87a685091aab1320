"""Job running: the state machine on the job table (store), the worker loop that claims and runs
jobs (worker), the kinds of job it can run (kinds), and the supervisor that keeps worker processes
alive (supervisor)."""
