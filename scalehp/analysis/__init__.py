"""Answers from results tables: pure functions over pandas frames, one module per concept.

``tables``      leaderboard, best trial, one row per run
``curves``      learning curves and anytime performance (best so far over wall time or steps)
``importance``  which params drive the metric (fANOVA, via optuna)
``asha``        rung statistics from ASHA's recorded decisions
``pbt``         the family tree of a PBT trial and its param schedule
``pareto``      the non-dominated trials for several metrics
``compare``     runs side by side
``plots``       the same answers as matplotlib figures (PNG)
``report``      one self-contained HTML file with all of the above

Nothing here prints, starts Ray or reads files: the functions take the frames of
:class:`scalehp.Results` and return frames (or figures).
"""
