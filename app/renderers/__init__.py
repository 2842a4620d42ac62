"""One module per format a context renders to; registry.py maps a Format to its renderer."""
