"""The edges: the HTTP service (`api.http`) and the command line (`api.cli`).

Both sit over the shared pieces kept here: settings, the store, the event outbox and
relay (`events`), file loaders (`files`), reference-data resolution, errors and log-safe
formatting.
"""
