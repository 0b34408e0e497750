#!/usr/bin/env bash
# Wheels for a GPU machine without a package index, for experiments/cuda_check.sh:
#
#     bash experiments/cuda_wheels.sh [DIR]      # default DIR: .whl (keep it git-ignored)
#
# Downloads, for CPython 3.12 on x86-64 Linux, the dependencies of nas (and of Ray Tune) that a
# CUDA image with torch, numpy, pandas, scipy, scikit-learn, matplotlib, networkx, pyyaml,
# pillow, requests, protobuf, msgpack, attrs, aiohttp, click, filelock, narwhals and
# pytest typically lacks, at the versions installed here. Ray's wheel (~79 MB) is repacked
# without what a local Tune run never loads (the Java jar, the dashboard's web build, rllib,
# serve, llm, test folders: ~41 MB left), so that wheels and repository fit a 64 MiB transfer.
set -euo pipefail
DIR=${1:-.whl}
mkdir -p "$DIR"
NAMES="optuna sqlalchemy alembic mako colorlog plotly mlxtend ray jsonschema
       jsonschema-specifications referencing rpds-py pydantic pydantic-core annotated-types
       typing-inspection tensorboardX typing-extensions"
SPECS=$(python3 - $NAMES <<'EOF'
import importlib.metadata as md, sys
print(" ".join(f"{n}=={md.version(n)}" for n in sys.argv[1:]))
EOF
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DIR" $SPECS
python3 - "$DIR" <<'EOF'
import glob, os, sys, zipfile

DROP = ("ray/jars/", "ray/dashboard/client/build/", "ray/rllib/", "ray/serve/", "ray/llm/")
dropped = lambda name: name.startswith(DROP) or "/tests/" in name  # noqa: E731
for path in glob.glob(os.path.join(sys.argv[1], "ray-*.whl")):
    tmp = path + ".tmp"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED,
                                                       compresslevel=9) as zout:
        for info in zin.infolist():
            if dropped(info.filename):
                continue
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):  # list only what the wheel holds
                data = "".join(line + "\n" for line in data.decode().splitlines()
                               if not dropped(line.split(",")[0])).encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, path)
EOF
du -cb "$DIR"/*.whl | tail -1 | awk '{printf "%.1f MiB of wheels in '"$DIR"'\n", $1 / 2^20}'
