"""Ours, not the kernel's: the simulated machine's state store and step
recorder, the trace, the driver that runs a scenario on the model, and its
named limits."""
