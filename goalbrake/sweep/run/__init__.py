"""The run wing: trials run, workers supervised, lost trials recovered.

* :mod:`~goalbrake.sweep.run.objective`: one trial = one fit built by the app's builder;
* :mod:`~goalbrake.sweep.run.trial_callbacks`: the epoch record, the NaN guard, the stop;
* :mod:`~goalbrake.sweep.run.storage`: the embedded journal file or an RDB URL, the locks;
* :mod:`~goalbrake.sweep.run.recovery`: failing and retrying lost trials;
* :mod:`~goalbrake.sweep.run.study`: samplers, pruners, the start/stop rule;
* :mod:`~goalbrake.sweep.run.worker`: a worker process's loop;
* :mod:`~goalbrake.sweep.run.supervisor`: worker slots and processes;
* :mod:`~goalbrake.sweep.run.command`: ``goalbrake sweep``.
"""
