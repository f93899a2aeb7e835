"""Paper tables from sweep outputs: collect runs, aggregate seeds, render next to the paper.

- :mod:`midl.reporting.runs`: find run folders and read their ``metrics.json`` / analyses;
- :mod:`midl.reporting.tables`: the layout of every paper table (rows, columns, paper keys);
- :mod:`midl.reporting.render`: statistics over seeds, marks, Markdown / CSV / LaTeX;
- :mod:`midl.reporting.analyses`: the analyses a table needs (:mod:`midl.reporting.needs`),
  run once with :mod:`midl.analyses`;
- :mod:`midl.reporting.scales`: the scales' settings and seeds (``configs/scale/``);
- :mod:`midl.reporting.effects`: effects over seeds, t- and bootstrap intervals, verdict
  rules (the claims audit's statistics); :mod:`midl.reporting.claims.plots`: its figures;
- :mod:`midl.reporting.session`: what one ``make tables`` did (runs trained / skipped /
  failed, files written, wall time).

The command lines are :mod:`midl.report` (tables) and :mod:`midl.claims` (the claims audit);
nothing in this package imports them.
"""
