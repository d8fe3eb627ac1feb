import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "training" / "Dockerfile"
REQUIREMENTS = REPO / "training" / "requirements.txt"
# What the training program imports; the image needs exactly these and their dependencies.
TRAINING_ROOTS = ("scikit-learn", "pandas", "pyarrow", "skl2onnx", "onnx", "onnxruntime", "numpy", "joblib")


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1]) for line in lines]


def pins() -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\\n]+)", REQUIREMENTS.read_text(), flags=re.MULTILINE)
    return {name.lower(): version for name, version in found}


def locked_closure() -> dict[str, str]:
    packages = {p["name"]: p for p in tomllib.loads((REPO / "uv.lock").read_text())["package"]}
    closure: dict[str, str] = {}
    pending = list(TRAINING_ROOTS)
    while pending:
        name = pending.pop()
        if name not in closure:
            closure[name] = packages[name]["version"]
            pending.extend(dependency["name"] for dependency in packages[name].get("dependencies", []))
    return closure


def test_every_copy_source_exists_in_the_repository() -> None:
    copies = [args.split() for kind, args in instructions() if kind == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert list(REPO.glob(source)), f"COPY source {source} does not exist"


def test_image_is_python_312_slim_runs_as_sagemaker_runs_it_and_enters_the_training_program() -> None:
    steps = instructions()
    assert steps[0] == ("FROM", "python:3.12-slim")
    # Root, as SageMaker runs training containers: no AWS document says a non-root user can write its /opt/ml mounts.
    assert [args for kind, args in steps if kind == "USER"] == []
    assert steps[-1] == ("ENTRYPOINT", '["python", "-m", "training"]')
    assert any(kind == "RUN" and "--require-hashes -r /tmp/requirements.txt" in args for kind, args in steps)


def test_requirements_pin_exactly_the_locked_training_dependencies() -> None:
    assert pins() == locked_closure()


def test_every_requirement_carries_a_hash() -> None:
    blocks = re.split(r"\n(?=[A-Za-z0-9])", REQUIREMENTS.read_text())
    requirements = [block for block in blocks if re.match(r"[A-Za-z0-9]", block)]
    assert len(requirements) == len(pins())
    assert all("--hash=sha256:" in block for block in requirements)


def test_requirements_say_how_they_were_generated() -> None:
    assert "uv export --frozen --no-dev --extra training" in REQUIREMENTS.read_text().splitlines()[2]
