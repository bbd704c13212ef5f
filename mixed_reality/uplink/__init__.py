"""GSRMR uplink optimisation: the channel, the GSCLO problem, the APO and exact solvers, baselines and the on-line policy."""
