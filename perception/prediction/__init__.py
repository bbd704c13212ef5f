"""Trajectory prediction in the spirit of HiT: recorded datasets and their protocols (recordings),
features computed outside the network (features: agent frames, behaviour, dynamic centrality),
the network (network), its ONNX run time (predictor), kinematic baselines (baselines) and
prediction over a tracker's output (track_predictor). No ROS."""
