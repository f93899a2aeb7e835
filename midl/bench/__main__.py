"""``python -m midl.bench``: the benchmark suite's command line (:func:`midl.bench.suite.main`)."""

from midl.bench.suite import main

main()
