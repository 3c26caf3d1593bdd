"""`qms simulate`: a day of a hall played once per dispatch rule through the
real scripts, on a scratch Redis with a simulated clock, and the waits,
overtaking and window use each rule gives.

- `rules`: the rules as hall configs (`config_for_rule`), pure;
- `day`: the day played, generated from the hall and a seed or taken from
  an archived day's arrivals, pure;
- `player`: plays a day through `HallStore` (the only part that does I/O);
- `stats`: what a played day says (per-class waits, overtaking, utilisation), pure;
- `output`: the table, the JSON of the contract and the HTML report.

The demo's living hall is `dispatcher/simulator.py`; this package reuses its
clock and its arrival mix.
"""
