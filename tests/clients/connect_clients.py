"""Two Kafka Connect client libraries from PyPI, kafka-connect-py and kafka-connect-api, driven through a connector's
life as their users drive them, against a worker. Prints `PASS <check>` or `FAIL <check>: <why>` per check and a
summary; exits 1 if any failed.

Usage: python connect_clients.py <base url> <topic>
"""

import sys
import time
import traceback

from kafka_connect import KafkaConnect
from kafka_connect_api.kafka_connect_api import Api, Cluster, Connector

BASE, TOPIC = sys.argv[1], sys.argv[2]
FAILED = []
CHECKS = 0


def check(name, body):
    global CHECKS
    CHECKS += 1
    try:
        body()
        print(f"PASS {name}")
    except Exception as failure:  # noqa: BLE001 - every failure is reported, then counted
        why = "".join(traceback.format_exception_only(type(failure), failure)).strip().replace("\n", " ")
        print(f"FAIL {name}: {why}")
        FAILED.append(name)


def require(condition, what):
    if not condition:
        raise AssertionError(what)


def wait_for(what, condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def sink_config(name, **extra):
    config = {
        "connector.class": "dev.ebconnect.EventBridgeSinkConnector",
        "tasks.max": "1",
        "topics": TOPIC,
        "event_bus": "default",
    }
    config.update(extra)
    return {"name": name, "config": config}


# kafka-connect-py: its KafkaConnect client and the calls its CLI makes.
client = KafkaConnect(url=BASE)
py_name = f"py-{int(time.time() * 1000)}"


def state(name):
    return client.get_connector_status(name)["connector"]["state"]


def py_create():
    created = client.create_connector(sink_config(py_name))
    require(created["name"] == py_name and created["type"] == "sink", created)
    require(created["config"] == {**sink_config(py_name)["config"], "name": py_name}, created["config"])


def py_read():
    require(client.get_cluster_info()["version"].split(".")[0].isdigit(), client.get_cluster_info())
    require(py_name in client.list_connectors(), client.list_connectors())
    expanded = client.list_connectors(expand="status")
    require(expanded[py_name]["status"]["connector"]["state"] in ("RUNNING", "UNASSIGNED"), expanded)
    require(client.get_connector(py_name)["name"] == py_name, "get_connector")
    require(client.get_connector_config(py_name)["topics"] == TOPIC, client.get_connector_config(py_name))
    wait_for("RUNNING", lambda: state(py_name) == "RUNNING")


def py_update():
    changed = {**sink_config(py_name)["config"], "batch.max_entries": "5"}
    client.update_connector(py_name, changed)
    require(client.get_connector_config(py_name)["batch.max_entries"] == "5", client.get_connector_config(py_name))


def py_pause_resume_stop():
    client.pause_connector(py_name)
    wait_for("PAUSED", lambda: state(py_name) == "PAUSED")
    client.resume_connector(py_name)
    wait_for("RUNNING", lambda: state(py_name) == "RUNNING")
    client.stop_connector(py_name)
    wait_for("STOPPED", lambda: state(py_name) == "STOPPED")
    client.resume_connector(py_name)
    wait_for("RUNNING", lambda: state(py_name) == "RUNNING")


def py_restart():
    # It always sends includeTasks and onlyFailed, as False unless asked: a plain restart.
    client.restart_connector(py_name)
    answer = client.restart_connector(py_name, include_tasks=True, only_failed=False)
    require(answer["connector"]["state"] == "RESTARTING", answer)
    wait_for("RUNNING", lambda: state(py_name) == "RUNNING")


def py_tasks_topics_plugins():
    tasks = client.list_connector_tasks(py_name)
    require(len(tasks) == 1 and tasks[0]["id"]["task"] == 0, tasks)
    require(client.get_connector_task_status(py_name, 0)["state"] in ("RUNNING", "UNASSIGNED"), "task status")
    client.restart_connector_task(py_name, 0)
    wait_for("the topic to be active", lambda: TOPIC in client.list_connector_topics(py_name)[py_name]["topics"])
    client.reset_connector_topics(py_name)
    plugins = client.list_connector_plugins()
    require(any(plugin["class"].endswith("EventBridgeSinkConnector") for plugin in plugins), plugins)
    report = client.validate_connector_config("EventBridgeSinkConnector", {"connector.class": "eventbridge-sink", "topics": TOPIC})
    require(report["error_count"] == 1, report)


def py_delete():
    client.delete_connector(py_name)
    wait_for("the connector to go", lambda: py_name not in client.list_connectors())


check("kafka-connect-py: create_connector", py_create)
check("kafka-connect-py: cluster info, list, expand, get, config, status", py_read)
check("kafka-connect-py: update_connector", py_update)
check("kafka-connect-py: pause, resume, stop", py_pause_resume_stop)
check("kafka-connect-py: restart_connector, plain and with tasks", py_restart)
check("kafka-connect-py: tasks, task restart, topics, plugins, validate", py_tasks_topics_plugins)
check("kafka-connect-py: delete_connector", py_delete)

# kafka-connect-api: its Cluster and Connector objects.
cluster = Cluster(Api(url=BASE))
api_name = f"api-{int(time.time() * 1000)}"


def api_create_and_read():
    connector = Connector(cluster, api_name)
    connector.config = sink_config(api_name)["config"]
    require(connector.exists(), "not made")
    require(connector.config["topics"] == TOPIC, connector.config)
    require(cluster.kafka_cluster, "no cluster id")
    require(api_name in cluster.connectors, cluster.connectors)
    wait_for("RUNNING", lambda: connector.state == "RUNNING")


def api_cycle():
    connector = cluster.connectors[api_name]
    # Pause, restart every task, resume: the cycle that left a connector PAUSED when /tasks was missing.
    connector.cycle_connector()
    wait_for("RUNNING after the cycle", lambda: connector.state == "RUNNING")
    wait_for("its task RUNNING", lambda: all(task.is_running() for task in connector.tasks))
    connector.restart()
    wait_for("RUNNING after restart", lambda: connector.state == "RUNNING")


def api_loggers():
    require("root" in cluster.loggers, cluster.loggers)
    cluster.root_logger = "INFO"
    require(cluster.root_logger["level"] == "INFO", cluster.root_logger)


def api_delete():
    connector = cluster.connectors[api_name]
    connector.delete()
    wait_for("the connector to go", lambda: api_name not in cluster.connectors)


check("kafka-connect-api: create through config, exists, read", api_create_and_read)
check("kafka-connect-api: cycle_connector and restart", api_cycle)
check("kafka-connect-api: loggers and the root level", api_loggers)
check("kafka-connect-api: delete", api_delete)

print(f"{CHECKS - len(FAILED)} of {CHECKS} checks passed")
sys.exit(1 if FAILED else 0)
