"""On-device language model runtime (no ROS): Llama checkpoints from local files, ONNX export with a KV
cache, quantized and depth-pruned variants, energy metering, profiling and the CLONE-style controller."""
