"""deploy/kubernetes validated offline against the Kubernetes schemas (kubernetes-validate ships them), with the rules
the manifests promise: secrets only from Secrets, a non-root user, resources, probes on paths the service answers."""

import kubernetes_validate
import pytest
import requests
import yaml

from conftest import ROOT

K8S = "1.33"
DOCS = [(f.name, d) for f in sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
        for d in yaml.safe_load_all(f.read_text())]


def deployment() -> dict:
    return next(d for _, d in DOCS if d["kind"] == "Deployment")


def test_the_three_kinds_are_there():
    assert sorted(d["kind"] for _, d in DOCS) == ["Deployment", "HorizontalPodAutoscaler", "Service"]


@pytest.mark.parametrize("name,doc", DOCS, ids=[f"{n}:{d['kind']}" for n, d in DOCS])
def test_manifest_is_valid_kubernetes(name, doc):
    kubernetes_validate.validate(doc, K8S, strict=True)


def test_the_validator_catches_a_mistake():
    "A misspelt field and a wrong type are refused: the check above can fail."
    bad = yaml.safe_load(yaml.safe_dump(deployment()))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match=r"\('pathh' was unexpected\)"):
        kubernetes_validate.validate(bad, K8S, strict=True)
    bad = yaml.safe_load(yaml.safe_dump(deployment()))
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="'two' is not of type 'integer'"):
        kubernetes_validate.validate(bad, K8S, strict=True)


def test_secrets_come_from_secrets_and_the_pod_runs_as_a_user():
    pod = deployment()["spec"]["template"]["spec"]
    c = pod["containers"][0]
    secret_like = [e for e in c["env"] if any(w in e["name"] for w in ("SECRET", "KEY", "DATABASE_URL", "PASSWORD"))]
    assert {e["name"] for e in secret_like} >= {"MLKIT_DATABASE_URL", "MLKIT_MARKETPLACE_JWT_SECRET",
                                                 "MLKIT_MARKETPLACE_ENCRYPTION_KEYS"}
    assert all("value" not in e and "secretKeyRef" in e["valueFrom"] for e in secret_like)
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(c["resources"]["limits"])


def test_settings_named_in_the_manifest_exist():
    "Every MLKIT_<SECTION>_<KEY> in the manifest names a real setting (a typo would be silently ignored)."
    from mlkit.core import settings
    container = deployment()["spec"]["template"]["spec"]["containers"][0]
    env = [e["name"] for e in container["env"] if e["name"].startswith("MLKIT_")]
    known = {f"MLKIT_{s.upper()}_{k.upper()}" for s, kv in settings.values.items() for k in kv}
    assert [e for e in env if e not in known] == []


def test_probes_answer_on_the_service(server):
    c = deployment()["spec"]["template"]["spec"]["containers"][0]
    paths = {c[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"/readyz", "/healthz"}
    for p in paths: assert requests.get(server + p, timeout=10).status_code == 200, p
    port = c["ports"][0]["containerPort"]
    assert port == 3000                       # BentoML's default port in the image `bentoml containerize` builds
