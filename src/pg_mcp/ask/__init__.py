"""The server-side ask loop: table selection and context, prompts, the OpenAI-compatible
model client, scoring and retries, rate limits. May import refs, db (its public entry points:
executor, discovery, cache; not pools, watchdog, introspect or embedded) and core.
"""
