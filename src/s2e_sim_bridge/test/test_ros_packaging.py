"""ROS 2 packaging without ROS: package.xml, launch files, params files, Docker image.

* every ROS package the rclpy adapters and launch files use (Python imports, message types
  built by name, launched executables) is an ``exec_depend`` of the package.xml;
* the launch files parse and declare the documented arguments, and launch executables that
  exist (console scripts of our setup.py files, or ROS packages listed as dependencies);
* ``config/<embodiment>.yaml`` exists for every embodiment, parses as a ROS 2 params file
  and sets exactly the declared parameters of the policy node;
* setup.py installs the launch and config folders; the Dockerfile's files exist.
"""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from s2e_policy.embodiment import available_embodiments
from s2e_policy.ros.node_params import NODE_NAME, PARAMETER_DESCRIPTIONS, PolicyNodeParams

SRC = Path(__file__).resolve().parents[2]
REPO = SRC.parent
POLICY, BRIDGE = SRC / "s2e_policy", SRC / "s2e_sim_bridge"

# The rclpy adapters, the modules whose message types they publish/subscribe by name, and
# the launch files of each package.
ROS_SOURCES = {
    POLICY: ["s2e_policy/ros/policy_node.py", "s2e_policy/ros/policy_core.py",
             "launch/robot.launch.py"],
    BRIDGE: ["s2e_sim_bridge/ros/bridge_node.py", "s2e_sim_bridge/ros/bridge_core.py",
             "launch/navbench.launch.py"],
}
# Python modules that come from a ROS package of another name.
MODULE_PACKAGES = {"tf2_ros": "tf2_ros_py"}
# Imported modules that are not ROS packages (pip dependencies and our own packages).
NOT_ROS = {"numpy", "yaml", "transforms3d", "s2e_policy", "s2e_sim_bridge", "onnxruntime"}
MESSAGE_TYPE = re.compile(r"[\"']([a-z][a-z0-9_]*)/(?:msg|srv)/[A-Z]\w*[\"']")
MSGBUILD = POLICY / "s2e_policy/ros/msgbuild.py"

DOCUMENTED_ARGUMENTS = {
    POLICY / "launch/robot.launch.py": {
        "embodiment", "model", "params_file", "namespace", "use_sim_time", "image_topic",
        "odom_topic", "goal_topic", "e_stop_topic", "cmd_vel_topic", "publish_camera_tf",
        "camera_frame", "base_frame", "camera_x", "camera_y", "camera_z", "camera_roll",
        "camera_pitch", "camera_yaw"},
    BRIDGE / "launch/navbench.launch.py": {
        "model", "scene", "task", "episodes", "seed", "embodiment", "render_width", "backend",
        "out", "policy_params_file", "record", "bag"},
}


def exec_depends(package: Path) -> list[str]:
    root = ET.parse(package / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == package.name
    return [e.text for e in root.iter("exec_depend")]


def msgbuild_packages() -> dict[str, set[str]]:
    """Message packages each builder of ``msgbuild`` uses, through the builders it calls."""
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for node in ast.parse(MSGBUILD.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            direct[node.name] = set(MESSAGE_TYPE.findall(ast.unparse(node)))
            calls[node.name] = {c.func.id for c in ast.walk(node) if isinstance(c, ast.Call)
                                and isinstance(c.func, ast.Name)}
    closure = {name: set(types) for name, types in direct.items()}
    for _ in direct:  # fixed point over the call graph
        for name in direct:
            for callee in calls[name] & set(direct):
                closure[name] |= closure[callee]
    return closure


def ros_packages_used(package: Path) -> set[str]:
    """ROS packages of the imports, message types and ``msgbuild`` builders a package uses."""
    used: set[str] = set()
    builders = msgbuild_packages()
    for relative in ROS_SOURCES[package]:
        text = (package / relative).read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in NOT_ROS \
                        and top != "__future__":
                    used.add(MODULE_PACKAGES.get(top, top))
        used.update(MESSAGE_TYPE.findall(text))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "msgbuild":
                used |= builders[node.attr]
    return used


def launch_tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def declared_arguments(tree: ast.Module) -> set[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets):
            return {k.value for k in node.value.keys}
    raise AssertionError("no ARGUMENTS table")


def launched(tree: ast.Module) -> list[tuple[str, str]]:
    """``(package, executable)`` of every ``Node(...)`` action."""
    nodes = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Node":
            kw = {k.arg: k.value.value for k in node.keywords
                  if k.arg in ("package", "executable")}
            nodes.append((kw["package"], kw["executable"]))
    return nodes


def console_scripts(package: Path) -> set[str]:
    tree = ast.parse((package / "setup.py").read_text())
    scripts: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    scripts |= {e.value.split("=")[0].strip() for e in value.elts}
    return scripts


@pytest.mark.parametrize("package", [POLICY, BRIDGE], ids=lambda p: p.name)
def test_package_xml_lists_every_ros_dependency(package: Path) -> None:
    depends = exec_depends(package)
    assert len(depends) == len(set(depends)), "duplicate exec_depend"
    used = ros_packages_used(package)
    assert {"rclpy", "launch", "launch_ros"} <= used  # the scan does see the adapters
    missing = sorted(used - set(depends))
    assert not missing, f"{package.name}/package.xml lacks exec_depend {missing}"


@pytest.mark.parametrize("path", sorted(DOCUMENTED_ARGUMENTS), ids=lambda p: p.name)
def test_launch_files_declare_arguments_and_launch_existing_executables(path: Path) -> None:
    tree = launch_tree(path)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    assert declared_arguments(tree) == DOCUMENTED_ARGUMENTS[path]
    ours = {POLICY.name: console_scripts(POLICY), BRIDGE.name: console_scripts(BRIDGE)}
    package_root = path.parents[1]
    for package, executable in launched(tree):
        if package in ours:
            assert executable in ours[package], f"{package} has no executable {executable}"
            assert package == package_root.name or package in exec_depends(package_root)
        else:
            assert package in exec_depends(package_root), f"{package} not in package.xml"


@pytest.mark.parametrize("embodiment", available_embodiments())
def test_params_file_per_embodiment_sets_every_declared_parameter(embodiment: str) -> None:
    path = POLICY / "config" / f"{embodiment}.yaml"
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == {NODE_NAME}
    assert set(raw[NODE_NAME]["ros__parameters"]) == set(PARAMETER_DESCRIPTIONS)
    params = PolicyNodeParams.from_file(path)
    assert params.embodiment == embodiment and params.providers == ()
    # A ROS 2 params file holds no empty arrays and floats as floats (the declared types).
    defaults = PolicyNodeParams().as_ros_values()
    for name, value in raw[NODE_NAME]["ros__parameters"].items():
        assert type(value) is type(defaults[name]), name


def test_bad_params_files_are_refused(tmp_path: Path) -> None:
    from s2e_policy.ros.node_params import ParameterError

    path = tmp_path / "p.yaml"
    path.write_text("policy_node:\n  ros__parameters:\n    controler: direct\n")
    with pytest.raises(ParameterError, match=r"p\.yaml: unknown parameter\(s\) \['controler'\]"):
        PolicyNodeParams.from_file(path)
    path.write_text("other_node:\n  ros__parameters: {}\n")
    with pytest.raises(ParameterError, match="no section for node 'policy_node'"):
        PolicyNodeParams.from_file(path)
    path.write_text("policy_node:\n  ros__parameters:\n    image_timeout_s: -1.0\n")
    with pytest.raises(ParameterError, match="image_timeout_s: expected a finite value > 0"):
        PolicyNodeParams.from_file(path)
    path.write_text("policy_node:\n  ros__parameters:\n    lookahead_m: fast\n")
    with pytest.raises(ParameterError, match="lookahead_m: expected float"):
        PolicyNodeParams.from_file(path)


@pytest.mark.parametrize("package", [POLICY, BRIDGE], ids=lambda p: p.name)
def test_setup_installs_launch_and_config(package: Path) -> None:
    text = (package / "setup.py").read_text()
    assert '(f"share/{PACKAGE}/launch", glob("launch/*.py"))' in text
    if package == POLICY:
        assert '(f"share/{PACKAGE}/config", glob("config/*.yaml"))' in text


def test_robot_dockerfile_references_existing_files() -> None:
    text = (REPO / "docker" / "robot.Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(\S+)\s+\S+", text, flags=re.MULTILINE):
        assert (REPO / source).exists(), source
    launch = re.search(r"ros2\", \"launch\", \"(\w+)\", \"([\w.]+)\"", text)
    assert launch is not None, "the entrypoint runs ros2 launch"
    assert (SRC / launch.group(1) / "launch" / launch.group(2)).is_file()
    # The apt packages cover the ROS dependencies of the policy package.
    apt = set(re.findall(r"ros-jazzy-([a-z0-9-]+)", text))
    ros_common = {"rclpy", "launch", "rcl_interfaces", "lifecycle_msgs", "builtin_interfaces",
                  "std_msgs"}  # in ros-base
    missing = [d for d in exec_depends(POLICY) if not d.startswith("python3-")
               and d not in ros_common and d.replace("_", "-") not in apt]
    assert not missing, f"robot.Dockerfile does not install {missing}"
