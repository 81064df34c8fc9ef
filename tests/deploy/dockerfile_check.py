"""tests/deploy/dockerfile_check.py DOCKERFILE... - structure checks of earmark's images,
parsed with dockerfile-parse (what Docker's parser accepts line by line):
  - multi-stage: a build stage and a final stage;
  - the build stage runs exactly the scripts the tests run
    (deploy/install-deps.sh && deploy/docker/build-stage.sh /out; Dockerfile.cuda with
    EARMARK_CUDA=1 before build-stage.sh, so its binary has the cuda backend);
  - the final stage installs no build tools (no compiler, no -dev package, no
    install-deps.sh), copies only the staged tree and the dependency list from the build
    stage, runs as a non-root numeric user, declares /models a volume and bakes no weights.
Prints one line per problem and exits 1 if there is any."""
import os
import re
import sys

from dockerfile_parse import DockerfileParser

BUILD_RUN = "deploy/install-deps.sh && deploy/docker/build-stage.sh /out"
BUILD_RUN_CUDA = "deploy/install-deps.sh && EARMARK_CUDA=1 deploy/docker/build-stage.sh /out"
TOOLS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|nvcc|cuda-toolkit|[a-z0-9.+-]+-dev)\b")
WEIGHTS = re.compile(r"\.(gguf|safetensors|bin|pt)\b|\bmodels?/", re.I)


def check(path):
    probs = []
    df = DockerfileParser(fileobj=open(path, "rb"))
    stages, cur = [], None
    for ins in df.structure:
        if ins["instruction"] == "FROM":
            cur = {"from": ins["value"], "ins": []}
            stages.append(cur)
        elif cur is not None:
            cur["ins"].append((ins["instruction"], ins["value"]))
    if len(stages) < 2:
        return [f"{path}: {len(stages)} stage(s), want a build stage and a final stage"]
    build, final = stages[0], stages[-1]
    if not re.search(r"\bAS build\b", build["from"], re.I):
        probs.append(f"{path}: first stage is not named 'build'")
    runs = [v for i, v in build["ins"] if i == "RUN"]
    want = BUILD_RUN_CUDA if path.endswith(".cuda") else BUILD_RUN
    if want not in runs:
        probs.append(f"{path}: build stage does not RUN '{want}' (got {runs})")
    user = None
    for ins, val in final["ins"]:
        if ins == "RUN":
            if TOOLS.search(val.replace("$(cat /tmp/runtime-deps)", "")):
                probs.append(f"{path}: final stage installs a build tool: {val[:120]}")
            if "install-deps.sh" in val:
                probs.append(f"{path}: final stage runs install-deps.sh (build packages)")
        if ins in ("COPY", "ADD"):
            if "--from=build" not in val:
                probs.append(f"{path}: final stage {ins} not from the build stage: {val}")
            if WEIGHTS.search(val):
                probs.append(f"{path}: final stage copies weights: {val}")
        if ins == "USER":
            user = val.split(":")[0]
    if user is None or user in ("0", "root") or not user.isdigit():
        probs.append(f"{path}: final stage user is {user!r}, want a numeric non-root uid")
    vols = " ".join(v for i, v in final["ins"] if i == "VOLUME")
    if "/models" not in vols:
        probs.append(f"{path}: /models is not a VOLUME")
    ep = [v for i, v in final["ins"] if i == "ENTRYPOINT"]
    if not ep or "/usr/bin/earmark" not in ep[-1]:
        probs.append(f"{path}: ENTRYPOINT is not /usr/bin/earmark")
    return probs


def main():
    probs = []
    for p in sys.argv[1:]:
        if not os.path.isfile(p):
            probs.append(f"{p}: missing")
            continue
        probs += check(p)
    for p in probs:
        print(p, file=sys.stderr)
    return 1 if probs or len(sys.argv) < 2 else 0


if __name__ == "__main__":
    sys.exit(main())
