"""Ours, not the kernel's: a run made readable. The <= 75-column text
(statement text, the page picture, tables) and the JSON document."""
