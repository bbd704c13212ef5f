"""Lidar 3D object detection: a CenterPoint-style sparse-convolution detector (spconv + torch)."""
from perception.detection.config import (CLASS_MEMBERS, DETECTION_CLASSES, BackboneConfig, DecodeConfig,
                                         DetectorConfig, HeadConfig, NeckConfig, VoxelConfig)
from perception.detection.detector import (Detection, DetectorOptions, LidarDetector, ModelFileError,
                                           load_checkpoint, save_checkpoint)
from perception.detection.network import BACKBONES, CenterPointNet, register_backbone

__all__ = ["CLASS_MEMBERS", "DETECTION_CLASSES", "BackboneConfig", "DecodeConfig", "DetectorConfig", "HeadConfig",
           "NeckConfig", "VoxelConfig", "Detection", "DetectorOptions", "LidarDetector", "ModelFileError",
           "load_checkpoint", "save_checkpoint", "BACKBONES", "CenterPointNet", "register_backbone"]
