"""The message-queues lab as a learner works in it, on the local provider: a private
RabbitMQ node, a vhost and user of the lab's own, the starter failing with teaching
messages, the solution passing, and nothing left once the lab is stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pika
import pytest

from tests.conftest import REPO, lab_names, plain, sdtutor

LAB = REPO / "labs" / "06-message-queues"


@pytest.mark.slow
def test_local_lab_from_start_to_stop(local_home: Path, tmp_path: Path) -> None:
    env = {"SDTUTOR_HOME": str(local_home), "SDTUTOR_PROVIDER": "local"}
    workspace = tmp_path / "ws"
    started = sdtutor("lab", "start", "message-queues", "-w", str(workspace), env=env)
    assert started.returncode == 0, started.stderr
    assert "the lab's exchanges, queues and messages" in plain(started.stdout)
    info = json.loads(sdtutor("lab", "info", "6", "--json", env=env).stdout)
    names = lab_names(local_home, "message-queues")
    url = info["services"]["rabbitmq"]["url"]
    assert info["services"]["rabbitmq"]["kind"] == "rabbitmq"
    # The lab's own user and vhost, on loopback; never the node's admin.
    assert url.startswith(f"amqp://{names.role}:") and url.endswith("/" + names.vhost)
    assert "@127.0.0.1:" in url

    # The untouched starter runs but fails every check, each saying what it saw.
    check = sdtutor("lab", "check", "message-queues", "--json", env=env)
    assert check.returncode == 1, check.stderr
    report = json.loads(check.stdout)
    assert {c["id"] for c in report["checks"] if not c["passed"]} == {
        "topology",
        "routing",
        "dead-letter",
        "redelivery",
        "prefetch",
        "poison",
        "publish",
    }
    routing = next(c for c in report["checks"] if c["id"] == "routing")
    assert "fanout" in routing["message"]

    shutil.copyfile(LAB / "solution" / "pipeline.py", workspace / "pipeline.py")
    check = sdtutor("lab", "check", "message-queues", "--json", env=env)
    assert check.returncode == 0, [c["message"] for c in json.loads(check.stdout)["checks"]]

    # The learner's login reaches its own vhost only.
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        assert conn.channel().queue_declare("orders.billing", passive=True)
    finally:
        conn.close()
    other = url.rsplit("/", 1)[0] + "/%2F"
    with pytest.raises(pika.exceptions.AMQPError):
        pika.BlockingConnection(pika.URLParameters(other)).close()

    stopped = sdtutor("lab", "stop", "message-queues", env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "seeded data is kept" not in plain(stopped.stdout)
    assert workspace.is_dir()
    assert json.loads(sdtutor("lab", "info", "6", "--json", env=env).stdout)["status"] == (
        "not started"
    )
