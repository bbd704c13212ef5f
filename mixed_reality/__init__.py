"""Mixed reality (no ROS): the Gaussian-splatting model of the static world, its renderer and the
GSRMR uplink that decides which camera frames the remote digital twin needs.

Entry points: mixed_reality.gaussians.GaussianModel, mixed_reality.render.GaussianRenderer,
mixed_reality.build.gaussians_from_rgbd, mixed_reality.fit.fit_to_images,
mixed_reality.discrepancy.DiscrepancyPredictor.
"""
