#!/usr/bin/env python3
"""Checks deploy/docker-compose.yml and deploy/cloudrun/service.yaml: valid YAML
with the services, volumes and commands the docs promise; every `sextant`
subcommand they run exists in the binary (`sextant help`). With a docker client
on the machine, `docker compose config` validates the compose file too."""
import os, shutil, subprocess, sys
import yaml

root, sextant = sys.argv[1], sys.argv[2]
compose = yaml.safe_load(open(os.path.join(root, "deploy/docker-compose.yml")))
services = compose["services"]
assert {"engine", "api", "ingest", "backup"} <= set(services), services.keys()
assert {"engine-data", "api-data", "ingest-data", "inbox"} <= set(compose["volumes"])
for name in ("engine", "api", "ingest", "scraper", "bots"):
    service = services[name]
    assert service["volumes"], name
    command = service["command"]
    assert command[command.index("--data") + 1] == "/data", name
    help_text = subprocess.run([sextant, command[0], "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0, f"sextant {command[0]}: {help_text.stderr}"
    for flag in (part for part in command if part.startswith("--")):
        assert flag in help_text.stdout, f"{name}: sextant {command[0]} has no {flag}"
assert "--token-file" in services["engine"]["command"], "an engine beyond loopback needs its token"
assert "--tls-cert" in services["engine"]["command"], "an engine beyond loopback serves TLS"
for name in ("api", "ingest", "scraper", "bots"):
    command = services[name]["command"]
    assert command[command.index("--engine") + 1].startswith("tls://"), f"{name} dials the engine over TLS"
    environment = {**compose["x-sextant"].get("environment", {}), **services[name].get("environment", {})}
    assert environment.get("SEXTANT_ENGINE_CA_FILE") == "/certs/ca.pem", f"{name} verifies the engine against the CA"
    assert any(str(v).startswith("certs:/certs") for v in services[name]["volumes"]), f"{name} mounts the certificates"
run = yaml.safe_load(open(os.path.join(root, "deploy/cloudrun/service.yaml")))
args = run["spec"]["template"]["spec"]["containers"][0]["args"]
assert args[0] == "up" and "--backup-to" in args and args[args.index("--backup-to") + 1].startswith("gs://")
up_help = subprocess.run([sextant, "up", "--help"], capture_output=True, text=True).stdout
for flag in (part for part in args if part.startswith("--")):
    assert flag in up_help, f"cloud run: sextant up has no {flag}"
compose_file = os.path.join(root, "deploy/docker-compose.yml")
if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
    subprocess.run(["docker", "compose", "-f", compose_file, "config", "-q"], check=True, cwd=os.path.join(root, "deploy"))
    print("docker compose config: ok")
elif shutil.which("docker-compose"):
    subprocess.run(["docker-compose", "-f", compose_file, "config", "-q"], check=True, cwd=os.path.join(root, "deploy"))
    print("docker-compose config: ok")
else:
    print("no docker compose client here: YAML and flags checked only")
print("deploy files: ok")
