"""Command implementations for the ``medico`` CLI, one module per command or command group."""
