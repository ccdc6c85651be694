#!/usr/bin/env python3
"""Checks deploy/kubernetes: each overlay renders with `kubectl kustomize`
(offline), every object validates against Kubernetes' own schemas (PyPI
kubernetes-validate, strict: unknown fields are errors), and the objects hold
together the way a cluster would need them to: every `sextant` subcommand and
flag exists in the binary, every $(VAR) in args is defined, every ConfigMap key
and PersistentVolumeClaim referenced exists, every Secret key a pod needs is
one the overlay's instructions create, Services select a pod template, the
engine is a single-replica StatefulSet serving TLS with its token, and every
client dials it over TLS and verifies it against the CA.

    check_kubernetes.py ROOT SEXTANT_BINARY [KUBERNETES_VERSION]
"""
import os, re, subprocess, sys
import yaml
import kubernetes_validate

root, sextant = sys.argv[1], sys.argv[2]
version = sys.argv[3] if len(sys.argv) > 3 else "1.30.0"
expected = {
    "tenders": {"StatefulSet/sextant-engine", "Deployment/sextant-api", "CronJob/sextant-ingest", "Service/sextant-engine",
                "Service/sextant-api", "ConfigMap", "Namespace/sextant-tenders", "Deployment/sextant-engine-replica",
                "Service/sextant-engine-replicas", "HorizontalPodAutoscaler/sextant-engine-replica"},
    "knowledge-base": {"StatefulSet/sextant-engine", "Deployment/sextant-api", "Deployment/sextant-scraper",
                       "Deployment/sextant-bots", "Service/sextant-bots", "ConfigMap", "Namespace/sextant-kb"},
}
help_cache = {}


def help_of(subcommand):
    if subcommand not in help_cache:
        result = subprocess.run([sextant, subcommand, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, f"sextant {subcommand}: {result.stderr}"
        help_cache[subcommand] = result.stdout
    return help_cache[subcommand]


def pod_spec(obj):
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet"):
        return obj["spec"]["template"]["spec"], obj["spec"]["template"]["metadata"].get("labels", {})
    if kind == "CronJob":
        template = obj["spec"]["jobTemplate"]["spec"]["template"]
        return template["spec"], template["metadata"].get("labels", {})
    return None, None


problems = []
for overlay, wanted in expected.items():
    folder = os.path.join(root, "deploy/kubernetes/overlays", overlay)
    rendered = subprocess.run(["kubectl", "kustomize", folder], capture_output=True, text=True)
    assert rendered.returncode == 0, f"kubectl kustomize {overlay}: {rendered.stderr}"
    objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
    instructions = open(os.path.join(folder, "kustomization.yaml")).read()
    created_secret_keys = set(re.findall(r"--from-(?:literal|file)=([a-z0-9.-]+)=", instructions))
    names = {f"{o['kind']}/{o['metadata']['name']}" for o in objects}
    kinds = {o["kind"] for o in objects}
    for want in wanted:
        if "/" in want and want not in names or "/" not in want and want not in kinds:
            problems.append(f"{overlay}: no {want}")
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {error.message} at {list(error.path)}")
        except Exception as error:  # a schema the bundle lacks is a problem too
            problems.append(f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {error}")
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    claims = {o["metadata"]["name"] for o in objects if o["kind"] == "PersistentVolumeClaim"}
    templates = []
    for obj in objects:
        spec, labels = pod_spec(obj)
        if spec is None:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        templates.append(labels)
        claim_templates = {t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for volume in volumes.values():
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in claims:
                problems.append(f"{overlay}: {name} mounts claim {claim}, which is not defined")
            secret = volume.get("secret", {}).get("secretName")
            if secret == "sextant":
                for key in ("engine-token",):
                    if key not in created_secret_keys:
                        problems.append(f"{overlay}: the instructions do not create Secret sextant's {key}")
        for container in spec["containers"]:
            args = container.get("args", [])
            env = {e["name"]: e for e in container.get("env", [])}
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes and mount["name"] not in claim_templates:
                    problems.append(f"{overlay}: {name} mounts undefined volume {mount['name']}")
            for variable in re.findall(r"\$\(([A-Z_]+)\)", " ".join(args)):
                if variable not in env:
                    problems.append(f"{overlay}: {name} uses $({variable}) without defining it")
            for entry in env.values():
                source = entry.get("valueFrom", {})
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    if ref["name"] != config["metadata"]["name"]:
                        problems.append(f"{overlay}: {name} reads ConfigMap {ref['name']}, not the generated one")
                    if ref["key"] not in config.get("data", {}) and not ref.get("optional"):
                        problems.append(f"{overlay}: {name} needs ConfigMap key {ref['key']}")
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    if ref["key"] not in created_secret_keys and not ref.get("optional"):
                        problems.append(f"{overlay}: {name} needs Secret {ref['name']} key {ref['key']}, which the instructions do not create")
            if not args:
                problems.append(f"{overlay}: {name} runs no sextant subcommand")
                continue
            subcommand = args[0]
            text = help_of(subcommand)
            for flag in (a for a in args if a.startswith("--")):
                if flag not in text:
                    problems.append(f"{overlay}: {name}: sextant {subcommand} has no {flag}")
            if args[args.index("--data") + 1] != "/data":
                problems.append(f"{overlay}: {name}: --data is not /data")
            if subcommand == "engine" and "--follow" in args:
                # A read replica: a Deployment with a cache volume, scaled by an autoscaler, following the primary's location.
                if obj["kind"] != "Deployment" or "emptyDir" not in volumes.get("data", {}):
                    problems.append(f"{overlay}: {name}: a replica is a Deployment with an emptyDir cache")
                if not any(o["kind"] == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["name"] == obj["metadata"]["name"]
                           for o in objects):
                    problems.append(f"{overlay}: {name}: no autoscaler scales the replicas")
                if args[args.index("--follow") + 1] != "$(SHIP_TO)":
                    problems.append(f"{overlay}: {name} does not follow the primary's --ship-to location")
                for flag in ("--token-file", "--tls-cert", "--tls-key"):
                    if flag not in args:
                        problems.append(f"{overlay}: {name} runs without {flag}")
            elif subcommand == "engine":
                if obj["kind"] != "StatefulSet" or obj["spec"]["replicas"] != 1:
                    problems.append(f"{overlay}: the engine must be a single-replica StatefulSet")
                for flag in ("--token-file", "--tls-cert", "--tls-key", "--ship-to"):
                    if flag not in args:
                        problems.append(f"{overlay}: the engine runs without {flag}")
            if subcommand == "engine":
                probe = container.get("readinessProbe", {}).get("exec", {}).get("command", [])
                if probe[1:2] != ["collections"] or any(f.startswith("--") and f not in help_of("collections") for f in probe):
                    problems.append(f"{overlay}: {name}'s readiness probe is not a real `sextant collections` call")
            else:
                engine = args[args.index("--engine") + 1].split(",")
                if engine[0] != "tls://sextant-engine:7700" or any(e != "tls://sextant-engine-replicas:7700" for e in engine[1:]):
                    problems.append(f"{overlay}: {name} dials {','.join(engine)}, not the primary (then its replicas) over TLS")
                if len(engine) > 1 and not any(o["kind"] == "Service" and o["metadata"]["name"] == "sextant-engine-replicas" for o in objects):
                    problems.append(f"{overlay}: {name} reads from replicas the overlay does not run")
                if env.get("SEXTANT_ENGINE_CA_FILE", {}).get("value") != "/certs/ca.pem":
                    problems.append(f"{overlay}: {name} does not verify the engine against the CA")
            if subcommand == "api":
                if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                    problems.append(f"{overlay}: the API is not ready on /readyz")
        if obj["kind"] == "CronJob" and obj["spec"]["schedule"] != "0 */6 * * *":
            problems.append(f"{overlay}: the ingestion worker does not run four times a day")
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"]["selector"]
        if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in templates):
            problems.append(f"{overlay}: Service {service['metadata']['name']} selects no pod template")
    print(f"{overlay}: {len(objects)} objects rendered and validated against Kubernetes {version}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("kubernetes manifests: ok")
