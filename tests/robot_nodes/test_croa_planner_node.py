"""croa_planner over real rclpy, on simulated time that the test advances itself (/clock): a stopped
truck ahead in the ego's lane gives a path that keeps clear of it, a cmd_vel and a status without
fallback; braking until the first predictions and a stop without odometry; malformed messages
rejected with the reason while the node keeps serving; the target named on the topic or chosen
automatically; bad parameters and a missing scenario refused at start-up."""
from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Header, Int64
from visualization_msgs.msg import Marker, MarkerArray

from edge_robot_msgs.msg import PlannerStatus, PredictedObjects
from perception.objects import Box3D, ObjectClass, PredictedObject, PredictedPath, TrackedObject, corners_bev
from robot_nodes import graph, topics
from robot_nodes.conversions import make_odometry, predicted_objects_to_msg, quaternion_to_yaw, seconds_to_stamp
from planners.croa.scene import Plan
from robot_nodes.croa_planner import CroaPlannerNode, command_at
from robot_nodes.parameters import ParameterError
from robot_nodes.runner import StartupError
from ros_helpers import spinning, wait_until
from sim.geometry import rectangles_overlap

HORIZON = 12
"""Planned steps in these tests (1.2 s): a smaller problem, compiled faster."""
EGO_Y = -5.25
"""The ego drives +x in the middle lane of urban_default's three (lanes at y = -8.75, -5.25, -1.75)."""
EGO_SPEED = 6.0
START = 10.0
"""Simulated seconds when a test starts."""
STEP = 0.1
"""Simulated seconds per clock tick of the harness: one planning period at the default 10 Hz."""
TRUCK = (9.0, 2.5, 3.5)
CAR = (4.5, 1.9, 1.6)


def planner_node(context, **parameters) -> CroaPlannerNode:
    overrides = [Parameter(name, value=value) for name, value in {"croa.horizon": HORIZON, **parameters}.items()]
    return graph.croa_planner().create(context=context, parameter_overrides=overrides)


def predicted(object_id: int, label: ObjectClass, x: float, y: float, size, speed: float = 0.0) -> PredictedObject:
    """An object driving +x at `speed` (0: standing), with a 3 s most likely path at 2 Hz."""
    track = TrackedObject(object_id, label, 0.9, Box3D((x, y, size[2] / 2.0), size, 0.0), np.array([speed, 0.0]))
    times = 0.5 * np.arange(1, 7)
    path = PredictedPath(np.column_stack([x + speed * times, np.full(6, y)]), np.zeros(6), 0.5, 1.0)
    return PredictedObject(track, [path])


class Harness(Node):
    """Drives the simulated clock and the ego's odometry, publishes predictions and target ids, and
    keeps everything the planner publishes."""

    def __init__(self, context, node: CroaPlannerNode) -> None:
        super().__init__("harness", context=context)
        self.node = node
        self.clock = self.create_publisher(Clock, topics.CLOCK, 10)
        self.odometry = self.create_publisher(Odometry, topics.ODOMETRY, 10)
        self.predictions = self.create_publisher(PredictedObjects, topics.PREDICTED_OBJECTS, 10)
        self.target = self.create_publisher(Int64, topics.PLANNER_TARGET_ID, 10)
        self.paths: list[Path] = []
        self.commands: list[Twist] = []
        self.statuses: list[PlannerStatus] = []
        self.markers: list[MarkerArray] = []
        self.create_subscription(Path, topics.PLANNED_PATH, self.paths.append, 100)
        self.create_subscription(Twist, topics.CMD_VEL, self.commands.append, 100)
        self.create_subscription(PlannerStatus, topics.CROA_PLANNER_STATUS, self.statuses.append, 100)
        self.create_subscription(MarkerArray, topics.CROA_PLANNER_MARKERS, self.markers.append, 100)
        self.now = START
        self.ego_x = 50.0

    def connected(self, node: CroaPlannerNode) -> bool:
        return (all(publisher.get_subscription_count() > 0 for publisher in
                    (self.clock, self.odometry, self.predictions, self.target, node.pub_path, node.pub_cmd,
                     node.pub_status, node.pub_markers)))

    def tick(self, odometry: bool = True) -> None:
        """One clock step; the ego's odometry at the new time (it stands still in x: the test's
        scene stays where it is relative to it)."""
        self.now += STEP
        self.clock.publish(Clock(clock=seconds_to_stamp(self.now)))
        if odometry:
            self.odometry.publish(make_odometry(seconds_to_stamp(self.now), "odom", "base_link", self.ego_x, EGO_Y,
                                                0.0, EGO_SPEED, 0.0))

    def publish_predictions(self, objects: list[PredictedObject], frame_id: str = "odom") -> PredictedObjects:
        message = predicted_objects_to_msg(objects, Header(stamp=seconds_to_stamp(self.now), frame_id=frame_id))
        self.predictions.publish(message)
        return message

    def run_until(self, condition, objects: list[PredictedObject] | None = None, odometry: bool = True,
                  limit_s: float = 10.0) -> bool:
        """Tick (publishing the objects first, if given) until condition() holds; False after
        limit_s simulated seconds. Each tick waits for the planning cycle it starts to be published."""
        for _ in range(int(round(limit_s / STEP))):
            if objects is not None:
                self.publish_predictions(objects)
            statuses = len(self.statuses)
            self.tick(odometry)
            wait_until(lambda: len(self.statuses) > statuses, timeout_s=5.0)
            if condition():
                return True
        return False


@pytest.fixture
def served(context):
    """A planner (small horizon) and the harness, spinning and connected, the clock started."""
    node = planner_node(context)
    harness = Harness(context, node)
    with spinning(context, node, harness):
        assert wait_until(lambda: harness.connected(node))
        harness.clock.publish(Clock(clock=seconds_to_stamp(START)))
        assert wait_until(lambda: node.get_clock().now().nanoseconds >= START * 1e9)
        yield node, harness


def planned_states(path: Path) -> np.ndarray:
    return np.array([(pose.pose.position.x, pose.pose.position.y, quaternion_to_yaw(pose.pose.orientation))
                     for pose in path.poses])


def body_corners(states: np.ndarray, node: CroaPlannerNode) -> np.ndarray:
    """The ego's body at each planned (x, y, yaw), corners (N, 4, 2)."""
    vehicle = node.config.vehicle
    ahead = vehicle.length / 2.0 - vehicle.rear_overhang  # body centre ahead of base_link
    centers = states[:, :2] + ahead * np.column_stack([np.cos(states[:, 2]), np.sin(states[:, 2])])
    rows = np.column_stack([centers, np.zeros(len(states)), np.full(len(states), vehicle.length),
                            np.full(len(states), vehicle.width), np.ones(len(states)), states[:, 2]])
    return corners_bev(rows)


def test_a_stopped_truck_in_the_lane_gives_a_path_clear_of_it_a_command_and_a_status(served):
    node, harness = served
    truck = predicted(7, ObjectClass.TRUCK, harness.ego_x + 14.0, EGO_Y, TRUCK)
    assert harness.run_until(lambda: sum(not s.fallback for s in harness.statuses) >= 4, [truck])
    status = next(s for s in reversed(harness.statuses) if not s.fallback)
    assert status.reason == "" and status.obstacle_count == 1 and status.constrained_obstacle_count == 1
    assert status.iterations >= 1 and status.solve_time > 0.0 and status.header.frame_id == "odom"
    assert 0.0 <= status.prediction_age <= 0.2
    path = harness.paths[-1]
    assert path.header.frame_id == "odom" and len(path.poses) == HORIZON + 1
    assert path.poses[1].header.stamp.nanosec != path.poses[0].header.stamp.nanosec  # stamped along the plan
    states = planned_states(path)
    assert states[0, 0] == pytest.approx(harness.ego_x, abs=1e-6) and states[0, 1] == pytest.approx(EGO_Y, abs=1e-6)
    truck_corners = truck.track.box.corners_bev()
    assert not rectangles_overlap(body_corners(states, node), truck_corners[None]).any()
    # It keeps clear: around (out of the lane) or slowing down short of the truck.
    front = states[-1, 0] + node.config.vehicle.length - node.config.vehicle.rear_overhang
    assert abs(states[-1, 1] - EGO_Y) > 1.0 or front < truck.track.box.center[0] - TRUCK[0] / 2.0
    command = harness.commands[-1]
    assert 0.0 <= command.linear.x <= node.config.vehicle.max_speed and math.isfinite(command.angular.z)
    assert node.counters.followed > 0 and node.counters.commands >= node.counters.followed
    markers = harness.markers[-1].markers
    assert markers[0].action == Marker.DELETEALL
    namespaces = {marker.ns for marker in markers[1:]}
    assert {"croa_planner/path", "croa_planner/obstacles", "croa_planner/corridor"} <= namespaces
    assert node.counters.fallbacks == 0 and node.inputs.rejected == {}


def test_it_brakes_along_the_lane_until_predictions_come_and_stops_without_odometry(served):
    node, harness = served
    waiting = "waiting for the first predictions"
    assert harness.run_until(lambda: sum(s.reason == waiting for s in harness.statuses) >= 2)
    status = harness.statuses[-1]
    assert status.fallback and status.reason == waiting
    assert status.prediction_age == -1.0 and not harness.paths
    assert 0.0 < harness.commands[-1].linear.x < EGO_SPEED  # slowing down, still steered along the lane
    assert node.counters.waited_for_predictions >= 2 and node.counters.planned == 0
    count = len(harness.statuses)
    assert harness.run_until(lambda: "odometry older" in harness.statuses[-1].reason, odometry=False, limit_s=2.0)
    assert len(harness.statuses) > count
    assert harness.commands[-1].linear.x == 0.0 and harness.commands[-1].angular.z == 0.0
    # Predictions that stop coming are not planned on for ever.
    harness.publish_predictions([])
    assert harness.run_until(lambda: not harness.statuses[-1].fallback, limit_s=2.0)
    assert harness.run_until(lambda: "predictions" in harness.statuses[-1].reason and "old" in
                             harness.statuses[-1].reason, limit_s=3.0)


def test_malformed_messages_are_rejected_with_the_reason_and_the_node_keeps_serving(served):
    node, harness = served
    harness.tick()
    harness.publish_predictions([predicted(1, ObjectClass.CAR, harness.ego_x + 20.0, EGO_Y, CAR)], frame_id="map")
    assert wait_until(lambda: node.inputs.rejected["~/input/predicted_objects"] == 1)
    assert "planning frame" in node.inputs.last_reason["~/input/predicted_objects"]
    broken = harness.publish_predictions([predicted(1, ObjectClass.CAR, harness.ego_x + 20.0, EGO_Y, CAR)])
    broken.objects[0].initial_pose.pose.position.x = math.nan
    harness.predictions.publish(broken)
    assert wait_until(lambda: node.inputs.rejected["~/input/predicted_objects"] == 2)
    odometry = make_odometry(seconds_to_stamp(harness.now), "odom", "base_link", 0.0, 0.0, 0.0, 1.0, 0.0)
    odometry.pose.pose.orientation.w = 0.0  # a zero quaternion
    harness.odometry.publish(odometry)
    assert wait_until(lambda: node.inputs.rejected["~/input/odometry"] == 1)
    # The good predictions sent between the broken ones were taken; the planner goes on planning.
    assert harness.run_until(lambda: sum(not s.fallback for s in harness.statuses) >= 2,
                             [predicted(1, ObjectClass.CAR, harness.ego_x + 20.0, EGO_Y, CAR, speed=6.0)])
    assert harness.statuses[-1].obstacle_count == 1


def test_a_planner_that_raises_gives_a_braking_fallback_and_the_node_keeps_serving(served):
    node, harness = served
    plan = node.planner.plan

    def broken(scene):
        raise RuntimeError("solver crashed")

    node.planner.plan = broken
    car = [predicted(1, ObjectClass.CAR, harness.ego_x + 30.0, EGO_Y, CAR, speed=6.0)]
    assert harness.run_until(lambda: "planner error" in harness.statuses[-1].reason, car)
    status = harness.statuses[-1]
    assert status.fallback and "RuntimeError: solver crashed" in status.reason and status.obstacle_count == 1
    assert 0.0 < harness.commands[-1].linear.x < EGO_SPEED
    assert node.counters.planner_errors >= 1 and node.counters.fallbacks == node.counters.planner_errors
    node.planner.plan = plan
    assert harness.run_until(lambda: not harness.statuses[-1].fallback, car)


def test_the_target_is_chosen_automatically_or_named_on_the_topic(served):
    node, harness = served
    # A truck in the right lane hides a car parked beyond it; another car drives in full view.
    scene = [predicted(1, ObjectClass.TRUCK, harness.ego_x + 22.0, -8.75, TRUCK),
             predicted(2, ObjectClass.CAR, harness.ego_x + 32.0, -9.5, CAR),
             predicted(3, ObjectClass.CAR, harness.ego_x + 28.0, -1.75, CAR, speed=6.0)]

    def planned_with(target_id: int, automatic: bool):
        return lambda: (not harness.statuses[-1].fallback and harness.statuses[-1].target_id == target_id
                        and harness.statuses[-1].target_automatic == automatic)

    assert harness.run_until(planned_with(2, True), scene)
    assert harness.statuses[-1].occlusion_ratio_now > 0.2
    target_markers = [m for m in harness.markers[-1].markers if m.ns == "croa_planner/target"]
    assert any(m.type == Marker.TEXT_VIEW_FACING and "#2" in m.text for m in target_markers)
    assert any(m.ns == "croa_planner/sight_lines" and len(m.colors) == len(m.points) > 0
               for m in harness.markers[-1].markers)
    harness.target.publish(Int64(data=3))
    assert harness.run_until(planned_with(3, False), scene)
    harness.target.publish(Int64(data=42))  # not there: planned without a target
    assert harness.run_until(planned_with(-1, False), scene)
    harness.target.publish(Int64(data=-1))
    assert harness.run_until(planned_with(2, True), scene)
    assert node.counters.with_target >= 3


def test_commands_follow_the_plan_along_its_time_axis():
    steps, step, wheelbase = 4, 0.1, 2.5
    states = np.column_stack([np.arange(steps + 1.0), np.zeros(steps + 1), np.zeros(steps + 1),
                              [5.0, 5.5, 6.0, 6.5, 7.0]])
    controls = np.column_stack([np.full(steps, 5.0), [0.0, 0.1, 0.2, -0.1]])
    plan = Plan(states, controls, linear_velocity=5.5, angular_velocity=0.0, fallback=False, reason="",
                solve_time=0.0, iterations=1, occlusion_ratio=0.0, occlusion_ratio_now=0.0)
    assert command_at(plan, 0.0, step, wheelbase) == pytest.approx((5.5, 0.0))  # the plan's own first command
    linear, angular = command_at(plan, 0.25, step, wheelbase)  # in step 2: speed at 0.35 s, step 2's steering
    assert linear == pytest.approx(6.75) and angular == pytest.approx(6.75 * math.tan(0.2) / wheelbase)
    assert command_at(plan, 5.0, step, wheelbase) == pytest.approx((7.0, 7.0 * math.tan(-0.1) / wheelbase))
    # Backing out: the reversing speed and the yaw rate it gives with the wheels turned (the other way round).
    plan.states[:, 3] = [0.0, -0.25, -0.5, -0.75, -1.0]
    linear, angular = command_at(plan, 0.15, step, wheelbase)
    assert linear == pytest.approx(-0.625) and angular == pytest.approx(-0.625 * math.tan(0.1) / wheelbase)


@pytest.mark.parametrize("parameters, message", [
    ({"croa.occlusion_poses": 30}, "occlusion_poses"),
    ({"target.classes": ["car", "dragon"]}, "dragon"),
    ({"planning_rate": 0.0}, "planning_rate"),
    ({"vehicle.wheelbase": 5.0}, "length"),
])
def test_bad_parameters_are_refused_at_start(context, parameters, message):
    with pytest.raises(ParameterError, match=message):
        planner_node(context, **parameters)


def test_a_missing_scenario_fails_at_start_naming_the_file(context):
    with pytest.raises(StartupError, match=r"/no/such/scenario\.yaml.*parameter scenario"):
        planner_node(context, scenario="/no/such/scenario.yaml")
