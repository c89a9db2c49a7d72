"""Hosting a challenge: settings, the database, teams and tokens, limits, the public/private partition, the scoring
queue and worker, the standings, and the web app (``medico serve``, from the ``serve`` extra).

Only scoring imports torch (the worker, `init` and `rescore` reading the truth); the web process never does.
"""
