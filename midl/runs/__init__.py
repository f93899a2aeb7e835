"""Run bookkeeping: run folders and their locks (:mod:`~midl.runs.folder`), committed run
records (:mod:`~midl.runs.records`), checkpoints (:mod:`~midl.runs.checkpoints`), provenance and
config hashes (:mod:`~midl.runs.provenance`), secret redaction (:mod:`~midl.runs.secrets`),
atomic writes (:mod:`~midl.runs.io`) and a run's outcome (:mod:`~midl.runs.outcome`).

Nothing here imports torch or Lightning at module level.
"""
