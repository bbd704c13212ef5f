"""Training of the learned models on data the project makes (the simulated world) or ships."""
