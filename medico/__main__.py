"""``python -m medico``: the command line, also as ``torchrun --nproc-per-node N -m medico run MODEL``."""

from medico.cli import app

app(prog_name="medico")
