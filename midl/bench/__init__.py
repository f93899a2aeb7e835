"""Benchmarks: ``python -m midl.bench`` / ``make bench`` (:mod:`midl.bench.suite`, its command
line). Sections: block cost and baseline blocks (:mod:`midl.bench.suite`), framework overhead
and ``torch.compile`` (:mod:`midl.bench.overhead`), the CPU fast path
(:mod:`midl.bench.fastpath`); shared timing statistics in :mod:`midl.bench.stats`.
"""
