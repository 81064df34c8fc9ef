"""tests/deploy/k8s_check.py RENDERED.yaml - what kubernetes-validate cannot see in one
rendered overlay (kubectl kustomize output):
  - KEDA objects against tests/deploy/keda.schema.json (jsonschema);
  - every name a workload refers to exists in the same render (Secrets, ConfigMaps, PVCs,
    the Service the workers connect to, ScaledObject targets, TriggerAuthentications);
  - Services and the PodDisruptionBudget select some pod template;
  - earmark pods: readiness on /readyz, liveness on /healthz, runAsNonRoot, and
    EARMARK_DRAIN_MS shorter than terminationGracePeriodSeconds (graceful drain);
  - GPU workers ask for exactly one nvidia.com/gpu and run with --device cuda; Redis (when
    present) runs with AOF on a volume claim.
Prints one line per problem and exits 1 if there is any."""
import json
import os
import re
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def main(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    probs = []
    by = {}
    for d in docs:
        by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    schema = json.load(open(os.path.join(HERE, "keda.schema.json")))
    for d in docs:
        if d["apiVersion"].startswith("keda.sh/"):
            try:
                jsonschema.validate(d, schema)
            except jsonschema.ValidationError as e:
                probs.append(f"{d['kind']}/{d['metadata']['name']}: {e.message}")
    pods = {}
    for kind in ("Deployment", "StatefulSet"):
        for name, d in by.get(kind, {}).items():
            pods[f"{kind}/{name}"] = d
    for wname, w in pods.items():
        spec = w["spec"]["template"]["spec"]
        labels = w["spec"]["template"]["metadata"].get("labels", {})
        sel = w["spec"]["selector"]["matchLabels"]
        if any(labels.get(k) != v for k, v in sel.items()):
            probs.append(f"{wname}: selector does not match its pod labels")
        for v in spec.get("volumes", []):
            for key, kind, field in (("secret", "Secret", "secretName"), ("configMap", "ConfigMap", "name"),
                                     ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
                if key in v and v[key][field] not in by.get(kind, {}):
                    probs.append(f"{wname}: volume {v['name']} names missing {kind} {v[key][field]}")
        for c in spec["containers"]:
            for ef in c.get("envFrom", []):
                if "secretRef" in ef and ef["secretRef"]["name"] not in by.get("Secret", {}):
                    probs.append(f"{wname}: envFrom names missing Secret {ef['secretRef']['name']}")
            env = {e["name"]: e for e in c.get("env", [])}
            for e in env.values():
                if "value" in e and "valueFrom" in e:
                    probs.append(f"{wname}: env {e['name']} has both value and valueFrom")
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in by.get("Secret", {}):
                    probs.append(f"{wname}: env {e['name']} names missing Secret {ref['name']}")
            args = c.get("args", [])
            if not args or args[0] not in ("coordinator", "worker"):
                continue
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                probs.append(f"{wname}: readiness probe is not GET /readyz")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                probs.append(f"{wname}: liveness probe is not GET /healthz")
            if not spec.get("securityContext", {}).get("runAsNonRoot"):
                probs.append(f"{wname}: not runAsNonRoot")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            drain = int(env.get("EARMARK_DRAIN_MS", {}).get("value", "30000")) / 1000
            if drain >= grace:
                probs.append(f"{wname}: drain {drain:g} s does not fit terminationGracePeriodSeconds {grace}")
            if args[0] == "worker":
                ep = args[args.index("--connect") + 1]
                m = re.match(r"tcp://([^:]+):(\d+)$", ep)
                svc = by.get("Service", {}).get(m.group(1)) if m else None
                if not svc or int(m.group(2)) not in [p["port"] for p in svc["spec"]["ports"]]:
                    probs.append(f"{wname}: --connect {ep} is no Service port in this render")
                for f in ("--curve-key", "--coordinator-key", "--metrics", "--model"):
                    if f not in args:
                        probs.append(f"{wname}: worker without {f}")
                gpus = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                if "cuda" in c["image"] and gpus != 1:
                    probs.append(f"{wname}: GPU worker limits nvidia.com/gpu {gpus}, want 1")
                if "cuda" in c["image"] and not ("--device" in args and
                                                 args[args.index("--device") + 1].startswith("cuda")):
                    probs.append(f"{wname}: GPU worker without --device cuda (it would run on the CPU)")
            else:
                for f in ("--curve-secret", "--allow-keys", "--metrics"):
                    if f not in args:
                        probs.append(f"{wname}: coordinator without {f}")
    templates = [w["spec"]["template"]["metadata"].get("labels", {}) for w in pods.values()]

    def selects(sel):
        return any(all(t.get(k) == v for k, v in sel.items()) for t in templates)

    for name, s in by.get("Service", {}).items():
        if not selects(s["spec"]["selector"]):
            probs.append(f"Service/{name}: selects no pod template")
    for name, p in by.get("PodDisruptionBudget", {}).items():
        if not selects(p["spec"]["selector"]["matchLabels"]):
            probs.append(f"PodDisruptionBudget/{name}: selects no pod template")
    for name, so in by.get("ScaledObject", {}).items():
        if so["spec"]["scaleTargetRef"]["name"] not in by.get("Deployment", {}):
            probs.append(f"ScaledObject/{name}: target {so['spec']['scaleTargetRef']['name']} missing")
        for t in so["spec"]["triggers"]:
            ar = t.get("authenticationRef")
            if ar and ar["name"] not in by.get("TriggerAuthentication", {}):
                probs.append(f"ScaledObject/{name}: TriggerAuthentication {ar['name']} missing")
            addr = t["metadata"].get("address", "")
            if addr and addr.split(":")[0] not in by.get("Service", {}):
                probs.append(f"ScaledObject/{name}: address {addr} is no Service in this render")
    for name, r in by.get("StatefulSet", {}).items():
        c = r["spec"]["template"]["spec"]["containers"][0]
        if "redis" in c["image"]:
            a = " ".join(c.get("args", []))
            if "--appendonly yes" not in a:
                probs.append(f"StatefulSet/{name}: Redis without AOF")
            if not r["spec"].get("volumeClaimTemplates"):
                probs.append(f"StatefulSet/{name}: Redis without a volume claim")
    if not by.get("ScaledObject"):
        probs.append("no KEDA ScaledObject")
    for p in probs:
        print(f"{path}: {p}", file=sys.stderr)
    return 1 if probs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
