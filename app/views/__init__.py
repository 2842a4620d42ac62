"""Snapshots into what the templates draw, one module per thing drawn.

No kernel logic and no HTML: every fact comes from the engine's State,
Step and Run; these modules only lay them out (x positions, rows, which
object changed) for app/templates/ and for the pages' JSON twins.
"""
