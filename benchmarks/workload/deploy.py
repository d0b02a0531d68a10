"""The benchmark workload for pyinfra: the same ten tasks as remedy.yml and ansible.yml."""

from pyinfra import host
from pyinfra.facts.files import File
from pyinfra.operations import files, server

root = host.data.bench_root

server.shell(name="diagnose disk usage", commands=[f"df -P {root}"])
conf = host.get_fact(File, path=f"{root}/etc/app.conf")  # stat the config file
files.file(name="fix the config file's mode", path=f"{root}/etc/app.conf", mode="640")
files.directory(name="ensure the log directory", path=f"{root}/log", mode="750")
files.template(
    name="render the app config",
    src="templates/app.ini.j2",
    dest=f"{root}/etc/app.ini",
    mode="640",
    app_name="coze",
    app_port=8080,
    app_workers=4,
)
server.shell(
    name="empty the cache directory",
    commands=[f"rm -rf {root}/cache && mkdir -m 0755 {root}/cache"],
)
files.file(name="remove the stale pid file", path=f"{root}/run/app.pid", present=False)
server.shell(
    name="restore the data directory from its backup",
    commands=[
        f"rm -rf {root}/data && mkdir {root}/data && tar -xzf {root}/backup/data.tar.gz -C {root}/data"
    ],
)
server.shell(
    name="verify the restored data",
    commands=[f"cd {root}/data && sha256sum -c --quiet ../backup/data.sha256"],
)
files.line(
    name="set the log level", path=f"{root}/etc/app.conf", line="^log_level=.*", replace="log_level=info"
)
