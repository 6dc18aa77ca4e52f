#!/usr/bin/env bash
# rtrain runs on the laptop, and most laptops are Macs: this checks that it still compiles there,
# from Linux. For aarch64-apple-darwin and x86_64-apple-darwin it runs `cargo check --all-targets`
# and `cargo clippy --all-targets -- -D warnings`, so macOS-only code (cfg(target_vendor = "apple")
# and the like) is type-checked and linted like the Linux code.
#
# `cargo check` never links, but build scripts still compile the C parts of dependencies (ring's
# crypto) for the target, and there is no Apple toolchain here: CC_<target>/AR_<target> point at a
# stand-in that only writes empty object files and archives. Nothing of what it makes is ever
# linked or run, so this proves that the Rust code compiles, not that a Mac binary works.
# The targets' standard libraries are added with rustup when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)

installed="$(rustup target list --installed)"
for t in "${TARGETS[@]}"; do
  if ! grep -qxF "$t" <<<"$installed"; then
    echo "check-macos.sh: rustup target add $t" >&2
    rustup target add "$t"
  fi
done

tools="${CARGO_TARGET_DIR:-$PWD/target}/tools/macos-stand-in"
mkdir -p "$tools"
# The C compiler: whatever it is asked for, write an empty file where the output (-o) goes.
cat >"$tools/cc" <<'EOF'
#!/bin/sh
# Stand-in C compiler for scripts/check-macos.sh: writes an empty object where -o points.
out=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift ;;
    -o*) out=${1#-o} ;;
  esac
  shift
done
[ -z "$out" ] || : >"$out"
EOF
# The archiver (`ar cq LIB OBJ...`, `ar s LIB`): create the archive named after the flags, empty.
cat >"$tools/ar" <<'EOF'
#!/bin/sh
# Stand-in archiver for scripts/check-macos.sh: makes the archive (the first word after the flags).
[ $# -ge 2 ] && [ ! -e "$2" ] && printf '!<arch>\n' >"$2"
exit 0
EOF
chmod 755 "$tools/cc" "$tools/ar"

for t in "${TARGETS[@]}"; do
  var="${t//-/_}"
  export "CC_$var=$tools/cc" "AR_$var=$tools/ar"
  start=$SECONDS
  echo "check-macos.sh: cargo check --all-targets --target $t" >&2
  cargo check --locked --all-targets --target "$t"
  echo "check-macos.sh: cargo clippy --all-targets --target $t -- -D warnings" >&2
  cargo clippy --locked --all-targets --target "$t" -- -D warnings
  echo "check-macos.sh: $t ok in $((SECONDS - start)) s" >&2
done
echo "check-macos.sh: ok (${TARGETS[*]})"
