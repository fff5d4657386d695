"""Static checks of deploy/kubernetes that no schema expresses.

Usage: check.py DIR CARGO_TOML CONFIG_RS [RENDERED.yaml]

DIR holds kustomization.yaml and the manifests; RENDERED is the output of
`kubectl kustomize DIR`, checked the same way when given. Prints every
problem found and exits 1 if there is any. Run by validate.sh with the
PyYAML of its venv.
"""

import os
import re
import sys

import yaml

SUBCOMMANDS = {"api", "worker", "migrate"}
# The Secrets the workloads refer to; secret.example.yaml shows their shape.
SECRETS = {"portcullis-secrets", "portcullis-signing-keys"}
# Files kept out of the kustomization on purpose.
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "servicemonitor.yaml"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}

problems = []


def problem(where, message):
    line = f"{where}: {message}"
    if line not in problems:  # a ConfigMap read by three containers: said once
        problems.append(line)


def load(path):
    with open(path) as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def pod_spec(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec", {})


def pod_labels(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("metadata", {}).get("labels", {})


def containers(spec):
    return spec.get("initContainers", []) + spec.get("containers", [])


def matches(selector, labels):
    """A label selector (matchLabels, or a Service's plain map) against labels."""
    wanted = selector.get("matchLabels", selector) if selector else {}
    if not wanted or selector.get("matchExpressions"):
        return False  # an empty selector would match everything: not ours
    return all(labels.get(k) == v for k, v in wanted.items())


def cargo_version(path):
    with open(path) as f:
        in_package = False
        for line in f:
            line = line.strip()
            if line.startswith("["):
                in_package = line == "[package]"
            elif in_package and (m := re.match(r'version\s*=\s*"([^"]+)"', line)):
                return m.group(1)
    sys.exit(f"no [package] version in {path}")


def config_variables(path):
    """Every "NAME" the configuration reads is a quoted upper-case literal
    (the same rule as tests/packaging.rs)."""
    with open(path) as f:
        source = f.read()
    return {
        part
        for part in source.split('"')[1::2]
        if len(part) > 3 and "_" in part and re.fullmatch(r"[A-Z0-9_]+", part)
    }


def check_image(where, image, version):
    if "@sha256:" in image:
        return
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        problem(where, f"image {image} has no tag: pin a version")
    elif tag == "latest":
        problem(where, f"image {image} uses :latest: pin a version")
    elif repository.rsplit("/", 1)[-1] == "portcullis" and tag != version:
        problem(where, f"image {image} is not the version of Cargo.toml ({version})")


def check_workload(doc, docs, version, variables):
    where = name_of(doc)
    spec = pod_spec(doc)
    pod_security = spec.get("securityContext", {})
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "automountServiceAccountToken is not false")
    if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "the pod's seccompProfile is not RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problem(where, "uses the host's namespaces")
    config_maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for volume in volumes.values():
        if "secret" in volume and volume["secret"].get("secretName") not in SECRETS:
            problem(where, f"volume {volume['name']} mounts an unknown Secret")
        if "hostPath" in volume:
            problem(where, f"volume {volume['name']} is a hostPath")
    for container in containers(spec):
        cwhere = f"{where} container {container.get('name')}"
        check_image(cwhere, container.get("image", ""), version)
        security = container.get("securityContext", {})
        if security.get("readOnlyRootFilesystem") is not True:
            problem(cwhere, "readOnlyRootFilesystem is not true")
        if security.get("allowPrivilegeEscalation") is not False:
            problem(cwhere, "allowPrivilegeEscalation is not false")
        if security.get("privileged"):
            problem(cwhere, "is privileged")
        if "ALL" not in security.get("capabilities", {}).get("drop", []):
            problem(cwhere, "does not drop ALL capabilities")
        if security.get("capabilities", {}).get("add"):
            problem(cwhere, "adds capabilities")
        if security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is not True:
            problem(cwhere, "runAsNonRoot is not true (pod or container)")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            problem(cwhere, "runs as user 0")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    problem(cwhere, f"has no {resource} {kind[:-1]}")
        args = container.get("args", [])
        if not args or args[0] not in SUBCOMMANDS:
            problem(cwhere, f"args {args} do not start with one of {sorted(SUBCOMMANDS)}")
        ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is not None and port not in ports and port not in ports.values():
                problem(cwhere, f"{probe} names port {port}, which it does not expose")
        annotations = (
            doc.get("spec", {}).get("template", {}).get("metadata", {}).get("annotations", {})
        )
        scrape_port = annotations.get("prometheus.io/port")
        if scrape_port and int(scrape_port) not in ports.values():
            problem(where, f"prometheus.io/port {scrape_port} is no container port")
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in volumes:
                problem(cwhere, f"mounts the undefined volume {mount['name']}")
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                name = source["configMapRef"]["name"]
                if name not in config_maps:
                    problem(cwhere, f"reads the ConfigMap {name}, which is not shipped")
                    continue
                for key in config_maps[name].get("data", {}):
                    if key not in variables:
                        problem(f"ConfigMap/{name}", f"{key} is read by no one (src/config.rs)")
            if "secretRef" in source and source["secretRef"]["name"] not in SECRETS:
                problem(cwhere, f"reads an unknown Secret {source['secretRef']['name']}")
        for env in container.get("env", []):
            if env["name"] not in variables:
                problem(cwhere, f"sets {env['name']}, which src/config.rs does not read")
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] not in SECRETS:
                problem(cwhere, f"reads an unknown Secret {ref['name']}")


def check_references(docs, servicemonitors=()):
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    services = [d for d in docs if d["kind"] == "Service"]
    for service in services:
        where = name_of(service)
        selected = [w for w in workloads if matches(service["spec"].get("selector"), pod_labels(w))]
        if not selected:
            problem(where, "selects no pods of these manifests")
            continue
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for workload in selected:
                exposed = [
                    p
                    for c in containers(pod_spec(workload))
                    for p in c.get("ports", [])
                    if target in (p.get("name"), p["containerPort"])
                ]
                if not exposed:
                    problem(where, f"port {port.get('name')} targets {target}, "
                            f"which {name_of(workload)} does not expose")
    for budget in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        if not any(matches(budget["spec"].get("selector"), pod_labels(w)) for w in workloads):
            problem(name_of(budget), "selects no pods of these manifests")
    for policy in (d for d in docs if d["kind"] == "NetworkPolicy"):
        if not any(matches(policy["spec"].get("podSelector"), pod_labels(w)) for w in workloads):
            problem(name_of(policy), "selects no pods of these manifests")
    for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = [d for d in docs if d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]]
        if not target:
            problem(name_of(hpa), f"scales {ref['kind']}/{ref['name']}, which is not shipped")
        elif "replicas" in target[0]["spec"]:
            problem(name_of(target[0]), "sets replicas although an HPA owns the count "
                    "(every apply would reset it)")
    for monitor in servicemonitors:
        where = name_of(monitor)
        if monitor.get("apiVersion") != "monitoring.coreos.com/v1":
            problem(where, "apiVersion is not monitoring.coreos.com/v1")
        selected = [s for s in services if matches(monitor["spec"].get("selector"), s["metadata"].get("labels", {}))]
        if not selected:
            problem(where, "selects no Service of these manifests")
        for endpoint in monitor["spec"].get("endpoints", []):
            for service in selected:
                names = {p.get("name") for p in service["spec"].get("ports", [])}
                if endpoint.get("port") not in names:
                    problem(where, f"endpoint port {endpoint.get('port')} is no port of {name_of(service)}")


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    directory, cargo_toml, config_rs = sys.argv[1:4]
    version = cargo_version(cargo_toml)
    variables = config_variables(config_rs)
    if "DATABASE_URL" not in variables:
        sys.exit(f"found no configuration variables in {config_rs}")

    with open(os.path.join(directory, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    listed = kustomization.get("resources", [])
    for name in NOT_IN_KUSTOMIZATION & set(listed):
        problem("kustomization.yaml", f"lists {name}, which must stay out of it")
    present = {n for n in os.listdir(directory) if n.endswith(".yaml")}
    unlisted = present - set(listed) - NOT_IN_KUSTOMIZATION - {"kustomization.yaml"}
    for name in sorted(unlisted):
        problem("kustomization.yaml", f"does not list {name}")

    raw = []
    for name in listed:
        for doc in load(os.path.join(directory, name)):
            raw.append(doc)
            if doc["kind"] == "Secret":
                problem(name, f"{name_of(doc)}: ship Secrets by reference only")
    extra = {name: load(os.path.join(directory, name)) for name in NOT_IN_KUSTOMIZATION}
    for name, docs in [(n, load(os.path.join(directory, n))) for n in listed] + list(extra.items()):
        for doc in docs:
            if doc.get("metadata", {}).get("namespace"):
                problem(name, f"{name_of(doc)} names a namespace; the kustomization sets it")

    # The example Secrets hold every key the workloads name, only known variables,
    # and placeholders only.
    examples = {d["metadata"]["name"]: d for d in extra["secret.example.yaml"] if d["kind"] == "Secret"}
    if set(examples) != SECRETS:
        problem("secret.example.yaml", f"shows {sorted(examples)}, not {sorted(SECRETS)}")
    for key, value in examples.get("portcullis-secrets", {}).get("stringData", {}).items():
        if key not in variables:
            problem("secret.example.yaml", f"{key} is read by no one (src/config.rs)")
        if "CHANGE-ME" not in value:
            problem("secret.example.yaml", f"{key} is no obvious placeholder (CHANGE-ME)")
    key_files = set(examples.get("portcullis-signing-keys", {}).get("stringData", {}))
    for config_map in (d for d in raw if d["kind"] == "ConfigMap"):
        for path in config_map.get("data", {}).get("JWT_SIGNING_KEYS", "").split(","):
            if path and os.path.basename(path.strip()) not in key_files:
                problem("secret.example.yaml", f"portcullis-signing-keys has no {os.path.basename(path)}")

    sets = [("manifests", raw)]
    if len(sys.argv) == 5:
        sets.append(("rendered", load(sys.argv[4])))
    for label, docs in sets:
        workloads = [d for d in docs if d["kind"] in WORKLOADS]
        if {c["args"][0] for w in workloads for c in pod_spec(w).get("containers", []) if c.get("args")} != SUBCOMMANDS:
            problem(label, f"the workloads do not run exactly {sorted(SUBCOMMANDS)}")
        for workload in workloads:
            check_workload(workload, docs, version, variables)
        check_references(docs, extra["servicemonitor.yaml"] if label == "manifests" else ())

    if problems:
        print(f"{len(problems)} problem(s) in {directory}:")
        for line in problems:
            print(f"  {line}")
        sys.exit(1)
    checked = ", ".join(f"{len(docs)} {label} resources" for label, docs in sets)
    print(f"static checks passed ({checked}; images pinned to {version}, non-root, read-only root)")


if __name__ == "__main__":
    main()
