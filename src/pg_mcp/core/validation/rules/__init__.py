"""The rules: each a function of a ``Context`` (the walk's facts, schema, policy) that reports
problems. ``validate.py`` runs them in order; each module can be read, and is tested, alone.

- ``writes``: nested data-modifying statements, SELECT INTO, locking clauses
- ``functions``: denied functions (the reviewed built-in table), user functions in the catalog
- ``secrets``: secret catalogs and the secret families (settings, raw pages, ...)
- ``access``: the access policy (deny_schemas, deny_tables, deny_columns; ``*`` and whole rows)
- ``names``: relations and columns bound to the schema model; unknown ones, with suggestions
- ``budget``: the identifier count and the time budget (TOO_COMPLEX)
"""
