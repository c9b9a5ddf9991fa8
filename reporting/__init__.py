"""The reporting wing: what one run did, read back from ML Metadata.

`summary` (the console summary), `run_history` (every run's decisions) and
`report` (the HTML page) each take the run id they describe.
"""
