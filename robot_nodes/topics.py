"""The topic contract: the global names that launch files remap the nodes' private topics to."""

LIDAR_POINTS = "/sensing/lidar/points"
CAMERA_IMAGE = "/sensing/camera/image_raw"
CAMERA_INFO = "/sensing/camera/camera_info"
ODOMETRY = "/odom"
TF = "/tf"
TF_STATIC = "/tf_static"
CLOCK = "/clock"
CMD_VEL = "/cmd_vel"
DETECTED_OBJECTS = "/perception/objects"
LIDAR_DETECTOR_MARKERS = "/perception/lidar_detector/markers"
TRACKED_OBJECTS = "/perception/tracks"
PREDICTED_OBJECTS = "/prediction/objects"
TRAJECTORY_PREDICTOR_MARKERS = "/prediction/trajectory_predictor/markers"
PLANNED_PATH = "/planning/path"
CROA_PLANNER_MARKERS = "/planning/croa_planner/markers"
CROA_PLANNER_STATUS = "/planning/croa_planner/status"
PLANNER_TARGET_ID = "/planning/target_id"
GROUND_TRUTH_OBJECTS = "/simulation/ground_truth/objects"
UPLINK_DECISION = "/mixed_reality/uplink/decision"
UPLINK_IMAGE = "/mixed_reality/uplink/image"
UPLINK_POSE = "/mixed_reality/uplink/pose"
UPLINK_CAMERA_INFO = "/mixed_reality/uplink/camera_info"
MR_STREAM = "/mixed_reality/stream"
MR_STREAM_QUALITY = "/mixed_reality/stream/quality"
LLM_QUESTION = "/onboard_llm/question"
LLM_ANSWER = "/onboard_llm/answer"
LLM_ANSWER_RECORDS = "/onboard_llm/answer_records"
LLM_ASK_ACTION = "/onboard_llm/ask"
"""The onboard_llm node's Ask action (edge_robot_msgs/action/Ask): an action, not a topic, so not in CONTRACT."""
NODE_STATISTICS = "/node_statistics"
"""Every processing node's NodeStatistics (robot_nodes.node_statistics), published there directly: no remapping."""

CONTRACT = {
    LIDAR_POINTS: "sensor_msgs/msg/PointCloud2",
    CAMERA_IMAGE: "sensor_msgs/msg/Image",
    CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    ODOMETRY: "nav_msgs/msg/Odometry",
    TF: "tf2_msgs/msg/TFMessage",
    TF_STATIC: "tf2_msgs/msg/TFMessage",
    CLOCK: "rosgraph_msgs/msg/Clock",
    CMD_VEL: "geometry_msgs/msg/Twist",
    DETECTED_OBJECTS: "edge_robot_msgs/msg/DetectedObjects",
    LIDAR_DETECTOR_MARKERS: "visualization_msgs/msg/MarkerArray",
    TRACKED_OBJECTS: "edge_robot_msgs/msg/TrackedObjects",
    PREDICTED_OBJECTS: "edge_robot_msgs/msg/PredictedObjects",
    TRAJECTORY_PREDICTOR_MARKERS: "visualization_msgs/msg/MarkerArray",
    PLANNED_PATH: "nav_msgs/msg/Path",
    CROA_PLANNER_MARKERS: "visualization_msgs/msg/MarkerArray",
    CROA_PLANNER_STATUS: "edge_robot_msgs/msg/PlannerStatus",
    PLANNER_TARGET_ID: "std_msgs/msg/Int64",
    GROUND_TRUTH_OBJECTS: "edge_robot_msgs/msg/GroundTruthObjects",
    UPLINK_DECISION: "edge_robot_msgs/msg/UplinkDecision",
    UPLINK_IMAGE: "sensor_msgs/msg/CompressedImage",
    UPLINK_POSE: "geometry_msgs/msg/PoseStamped",
    UPLINK_CAMERA_INFO: "sensor_msgs/msg/CameraInfo",
    MR_STREAM: "sensor_msgs/msg/Image",
    MR_STREAM_QUALITY: "edge_robot_msgs/msg/StreamQuality",
    LLM_QUESTION: "std_msgs/msg/String",
    LLM_ANSWER: "std_msgs/msg/String",
    LLM_ANSWER_RECORDS: "edge_robot_msgs/msg/LlmAnswerRecord",
    NODE_STATISTICS: "edge_robot_msgs/msg/NodeStatistics",
}
"""Topic → message type of every topic in the contract (markers: one topic per node, under .../markers)."""

SIMULATED_SENSOR_TOPICS = [LIDAR_POINTS, CAMERA_IMAGE, CAMERA_INFO, ODOMETRY, TF, TF_STATIC, CLOCK,
                           CMD_VEL, GROUND_TRUTH_OBJECTS]
"""What the simulated world and its controller put on the graph (what the main job records)."""
