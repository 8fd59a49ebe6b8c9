"""A two-node Ray cluster and an nginx that logs every request, inside the network, PID and
mount namespaces this script is started in (``unshare --net --pid --fork --mount-proc``).

Loopback is the only interface there, so Ray binds 127.0.0.1 and nothing leaves the machine;
this script is the namespace's first process, so when it ends every process started in the
namespace (Ray's daemons and workers, nginx, any enduro) ends with it.

Usage: ``python ray_cluster.py WORKDIR RAY_PORT NGINX_PORT PORT...`` (the extra ports, at least
five, are Ray's: the second node's node manager and object manager, then the head's, and its
Ray Client server's). Prints one JSON line ``{"address": ..., "client": "ray://...", "nodes":
[...], "url": ..., "access_log": ...}`` once
both nodes are up, then waits for its standard input to close and exits: the kernel then ends
every process left in the namespace (``ray stop`` would take seconds more to the same end).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def _ray(*args: str, log: Path) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    if not Path(ray).exists():
        ray = shutil.which("ray") or "ray"
    with log.open("ab") as out:
        subprocess.run([ray, *args], check=True, stdout=out, stderr=out, timeout=120)


def _alive_nodes(address: str, want: int, timeout: float) -> list[str]:
    """Wait until ``want`` nodes are alive; their ids."""
    import ray
    ray.init(address=address, log_to_driver=False, logging_level="error")
    try:
        deadline = time.monotonic() + timeout
        while True:
            nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))
            if len(nodes) >= want:
                return nodes
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {want} Ray nodes came up")
            time.sleep(0.2)
    finally:
        ray.shutdown()


def _worker_ports(node: int) -> list[str]:
    """Node ``node``'s range of worker ports: Ray's default (10002-19999) overlaps the ports
    tests hand out, so each node takes 200 above them. Only this namespace has them."""
    low = 25000 + 200 * node
    return ["--min-worker-port", str(low), "--max-worker-port", str(low + 199)]


def main() -> int:
    workdir, ray_port, nginx_port = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ports = [int(p) for p in sys.argv[4:]]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "ray.log"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "4", "--disable-usage-stats"]
    _ray("start", "--head", "--port", str(ray_port), "--include-dashboard=false",
         "--temp-dir", str(workdir / "ray-head"), "--node-manager-port", str(ports[2]),
         "--object-manager-port", str(ports[3]), "--ray-client-server-port", str(ports[4]),
         *_worker_ports(0), *common, log=log)
    address = f"127.0.0.1:{ray_port}"
    # A second node on the same machine: ports of its own, so it registers as a node of its
    # own. Ray picks some of its ports at random when a node starts, so a start that lost a
    # port to the other node's tries again on others (this namespace has no one else's).
    for attempt in range(3):
        try:
            _ray("start", "--address", address, "--node-manager-port",
                 str(ports[0] + 17 * attempt), "--object-manager-port",
                 str(ports[1] + 17 * attempt),
                 *_worker_ports(1), *common, log=log)
            break
        except subprocess.CalledProcessError:
            if attempt == 2:
                sys.stderr.write(log.read_text(errors="replace")[-4000:])
                raise
    nodes = _alive_nodes(address, 2, 60)
    nginx_dir = workdir / "nginx"
    nginx_dir.mkdir(exist_ok=True)
    (nginx_dir / "nginx.conf").write_text(NGINX_CONF.format(dir=nginx_dir, port=nginx_port))
    nginx = subprocess.Popen(["/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                              else "nginx", "-c", str(nginx_dir / "nginx.conf"), "-p",
                              str(nginx_dir)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", nginx_port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    print(json.dumps({"address": address, "client": f"ray://127.0.0.1:{ports[4]}",
                      "nodes": nodes,
                      "url": f"http://127.0.0.1:{nginx_port}",
                      "access_log": str(nginx_dir / "access.log")}), flush=True)
    sys.stdin.read()  # until the test closes it
    nginx.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
