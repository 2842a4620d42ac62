"""The mremap-viz engine: the scenario language, the simulated kernel and its backends."""
