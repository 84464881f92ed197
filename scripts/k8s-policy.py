"""The hardening rules of k8s/README.md, checked on a rendered overlay
(`kubectl kustomize k8s/overlays/<name> | python3 scripts/k8s-policy.py`):
every pod non-root with a numeric user, RuntimeDefault seccomp, no
privilege escalation and no capabilities; every meshwork Deployment also
with a read-only root filesystem, no service-account token, startup,
readiness and liveness probes, a preStop delay, requests and a memory limit,
topology spread, and a PodDisruptionBudget and an autoscaler of its own;
and each is given the addresses of only the services its egress
NetworkPolicies let it reach (least privilege in its configuration too).
Prints each violation; exits 1 if there is any."""

import sys

import yaml

docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
problems = []
by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)


def check(condition, workload, what):
    if not condition:
        problems.append(f"{workload['kind']} {workload['metadata']['name']}: {what}")


for workload in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []):
    pod = workload["spec"]["template"]["spec"]
    context = pod.get("securityContext", {})
    check(context.get("runAsNonRoot") is True, workload, "runAsNonRoot is not true")
    check(isinstance(context.get("runAsUser"), int) and context["runAsUser"] > 0, workload, "no numeric non-root runAsUser")
    check(context.get("seccompProfile", {}).get("type") == "RuntimeDefault", workload, "seccomp is not RuntimeDefault")
    check(pod.get("automountServiceAccountToken") is False, workload, "a service-account token is mounted")
    for container in pod["containers"]:
        own = container.get("securityContext", {})
        check(own.get("allowPrivilegeEscalation") is False, workload, f"{container['name']} may escalate privileges")
        check(own.get("capabilities", {}).get("drop") == ["ALL"], workload, f"{container['name']} keeps capabilities")
        check(container.get("readinessProbe") and container.get("livenessProbe"), workload, f"{container['name']} lacks probes")
    if workload["kind"] != "Deployment":
        continue
    name = workload["metadata"]["name"]
    container = pod["containers"][0]
    check(container["securityContext"].get("readOnlyRootFilesystem") is True, workload, "root filesystem is writable")
    check(container.get("startupProbe"), workload, "no startupProbe")
    check(container.get("lifecycle", {}).get("preStop"), workload, "no preStop delay")
    resources = container.get("resources", {})
    check(resources.get("requests", {}).get("cpu") and resources.get("requests", {}).get("memory"), workload, "no requests")
    check(resources.get("limits", {}).get("memory"), workload, "no memory limit")
    check(pod.get("topologySpreadConstraints"), workload, "no topology spread")
    labels = workload["spec"]["selector"]["matchLabels"]
    check(
        any(pdb["spec"]["selector"].get("matchLabels") == labels for pdb in by_kind.get("PodDisruptionBudget", [])),
        workload,
        "no PodDisruptionBudget",
    )
    check(
        any(hpa["spec"]["scaleTargetRef"]["name"] == name for hpa in by_kind.get("HorizontalPodAutoscaler", [])),
        workload,
        "no HorizontalPodAutoscaler",
    )

config_maps = {config["metadata"]["name"]: config.get("data", {}) for config in by_kind.get("ConfigMap", [])}


def reachable_apps(labels):
    """The `app`s whose pods the egress policies selecting `labels` allow."""
    apps = set()
    for policy in by_kind.get("NetworkPolicy", []):
        selector = policy["spec"].get("podSelector", {}).get("matchLabels", {})
        if all(labels.get(key) == value for key, value in selector.items()):
            for rule in policy["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    app = peer.get("podSelector", {}).get("matchLabels", {}).get("app")
                    if app:
                        apps.add(app)
    return apps


def service_apps(url):
    """The `app`s a *_SERVICE_URL names: http://users:8001,
    dns://users-headless:8001, etcd://users, or several separated by commas."""
    hosts = (part.strip().split("://", 1)[-1].split("/")[0].split(":")[0] for part in url.split(","))
    return {host.removesuffix("-headless") for host in hosts if host}


for workload in by_kind.get("Deployment", []):
    pod = workload["spec"]["template"]["spec"]
    reachable = reachable_apps(workload["spec"]["template"]["metadata"].get("labels", {}))
    for container in pod["containers"]:
        env = {}
        for source in container.get("envFrom", []):
            env.update(config_maps.get(source.get("configMapRef", {}).get("name"), {}))
        env.update({var["name"]: var["value"] for var in container.get("env", []) if "value" in var})
        for name, url in env.items():
            if name.endswith("_SERVICE_URL"):
                unreachable = sorted(service_apps(url) - reachable)
                check(not unreachable, workload, f"{name} names {unreachable}, which its egress policy does not reach")

for problem in problems:
    print(problem)
if not by_kind.get("Deployment"):
    sys.exit("no Deployment in the input")
sys.exit(1 if problems else 0)
