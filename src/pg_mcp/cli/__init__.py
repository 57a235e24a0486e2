"""The ``pg-mcp`` command line: a thin argument parser (``main``) and one module per
command (``commands/``). The top layer: nothing imports it.
"""
