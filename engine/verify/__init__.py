"""Check the simulated kernel against the real one: `python -m engine verify`.

`real.RealMachine` runs a scenario's calls on the host kernel; `compare`
lines up its steps with the simulator's and reports where they differ.
"""
