"""`nncli sweep`'s parts: the plan (what each trial sets), one trial (an ordinary training run,
run wherever an executor puts it), the executors (this process, a local process pool, Ray) and
the ranking. commands/sweep.py puts them together; files/sweepfolder.py keeps the results."""
