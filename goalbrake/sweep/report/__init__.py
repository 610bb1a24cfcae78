"""The report wing: a study read back from its storage alone, and what ``goalbrake report``
writes from it.

* :mod:`~goalbrake.sweep.report.results`: trials as rows and grid points;
* :mod:`~goalbrake.sweep.report.stats`: paired comparisons across seeds (SciPy's t);
* :mod:`~goalbrake.sweep.report.importances`: PED-ANOVA importances per method;
* :mod:`~goalbrake.sweep.report.tables`: trials, best settings, paired comparisons;
* :mod:`~goalbrake.sweep.report.plots`: the figures;
* :mod:`~goalbrake.sweep.report.command`: :func:`write_report` and ``goalbrake report``.
"""
