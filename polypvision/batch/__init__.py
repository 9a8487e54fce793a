"""``polypvision batch``: annotate a whole archive of procedures, one report each.

The layers, from the outside in: ``cli`` parses arguments; ``run`` finds the procedures,
drives an engine, shows one progress line and writes ``summary.csv`` and the index page;
an engine (``local``: a process pool on this machine, ``ray_engine``: one Ray task per
procedure) runs :func:`polypvision.batch.job.run_job` once per procedure; the job checks
whether the outputs are already complete, annotates through the one adapter onto the
annotate pipeline (:func:`polypvision.batch.job.annotate_procedure`) and writes the report.
"""
