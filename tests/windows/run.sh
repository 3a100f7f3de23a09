#!/usr/bin/env bash
# Windows end-to-end under Wine: runs tests/windows/windows_e2e_test.ts with the
# real Windows build of Deno (deno.exe) under Wine 10, in a Debian 13 (trixie)
# chroot. See tests/windows/README.md.
#
# Needs: root, x86_64, the Debian mirrors and the npm registry. Everything it
# builds or downloads is cached in $INTELLISTOR_WINE_CACHE (default
# /var/cache/intellistor-wine), never in the repository.
#
# Exit code: the test's (0 = passed). If the environment cannot be built (not
# root, no network to the mirrors, debootstrap or Wine failing, no namespaces),
# it says loudly that Windows end-to-end was NOT run and exits 0 -- or 1 with
# INTELLISTOR_WINDOWS_E2E_REQUIRED=1.
#
# Environment: INTELLISTOR_WINE_CACHE, INTELLISTOR_DEBIAN_MIRROR,
# INTELLISTOR_WINDOWS_E2E_REQUIRED, INTELLISTOR_WINDOWS_E2E_TIMEOUT (seconds, default 900).
set -uo pipefail

readonly DENO_VERSION=2.9.6
readonly SUITE=trixie
# Change this line to force every machine to rebuild its cached root.
readonly RECIPE="1 debootstrap --variant=minbase $SUITE; apt-get install --no-install-recommends wine wine64"
CACHE=${INTELLISTOR_WINE_CACHE:-/var/cache/intellistor-wine}
MIRROR=${INTELLISTOR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REQUIRED=${INTELLISTOR_WINDOWS_E2E_REQUIRED:-0}
TIMEOUT=${INTELLISTOR_WINDOWS_E2E_TIMEOUT:-900}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROOTFS=$CACHE/rootfs-$SUITE-wine
DENO_EXE=$CACHE/deno-$DENO_VERSION/deno.exe
# Where the run's copy of the repository appears inside Wine: a path with a
# space and a non-ASCII letter, like C:\dados (Wine maps Z: to the chroot's /).
readonly SOURCE_IN_ROOT="/tmp/Código Fonte/intellistor"
# deno.exe where Windows installs programs (a space: cli_restore must quote it).
readonly DENO_IN_PREFIX="root/.wine/drive_c/Program Files/Deno/deno.exe"
readonly DENO_WINDOWS_PATH='C:\Program Files\Deno\deno.exe'

log() { printf '[windows-e2e] %s\n' "$*"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
START=$(now)
PHASE_START=$START
PHASE=""
TIMINGS=()
phase() {
  local t
  t=$(now)
  if [[ -n $PHASE ]]; then
    TIMINGS+=("$(printf '%-40s %7s s' "$PHASE" "$(elapsed "$PHASE_START" "$t")")")
    log "phase done: $PHASE ($(elapsed "$PHASE_START" "$t") s)"
  fi
  PHASE=$1
  PHASE_START=$t
  if [[ -n $PHASE ]]; then log "phase: $PHASE"; fi
}
print_timings() {
  phase ""
  log "timings:"
  local line
  for line in "${TIMINGS[@]}"; do log "  $line"; done
  log "  $(printf '%-40s %7s s' total "$(elapsed "$START" "$(now)")")"
}

# The one way out when the environment cannot be built: loud, plain, exit 0
# (or 1 when required).
not_run() {
  print_timings >&2
  {
    echo
    echo "######################################################################"
    echo "#  WINDOWS END-TO-END WAS NOT RUN."
    echo "#  Reason: $1"
    if [[ $# -gt 1 ]]; then printf '%s\n' "${@:2}" | sed 's/^/#    /'; fi
    echo "#  Nothing was checked on Windows (Wine) in this run; the Linux tests"
    echo "#  are unaffected. See tests/windows/README.md."
    echo "######################################################################"
    echo
  } >&2
  if [[ $REQUIRED == 1 ]]; then
    echo "INTELLISTOR_WINDOWS_E2E_REQUIRED=1: failing." >&2
    exit 1
  fi
  exit 0
}

# Commands run inside a fresh mount + PID namespace: every mount made there,
# and every process left (wineserver, a stuck deno.exe), disappears with it,
# whatever happens. --kill-child: if this script is killed, so is the namespace.
NS_PID=""
in_namespace() {
  # fd 9 (the cache lock) is not inherited: nothing left running may hold it.
  unshare --mount --pid --fork --kill-child --propagation private "$@" 9>&- &
  NS_PID=$!
  wait "$NS_PID"
  local rc=$?
  NS_PID=""
  return "$rc"
}
on_signal() {
  # unshare ignores SIGTERM/SIGINT while it waits; killing it kills the namespace's
  # first process (--kill-child), and with it every process in the namespace.
  [[ -n $NS_PID ]] && kill -KILL "$NS_PID" 2>/dev/null
  log "interrupted"
  exit 130
}
trap on_signal INT TERM

tail_of() { tail -n 15 "$1" 2>/dev/null | sed 's/^/| /'; }

# ---------------------------------------------------------------------------
phase "preconditions"
[[ $(id -u) == 0 ]] || not_run "not running as root (debootstrap, chroot and mount namespaces need root)."
[[ $(uname -m) == x86_64 ]] || not_run "this machine is $(uname -m); deno.exe and Wine here need x86_64."
for tool in unshare chroot tar npm npx node awk flock; do
  command -v "$tool" >/dev/null || not_run "the command '$tool' is missing."
done
unshare --mount --pid --fork --kill-child --propagation private true 2>/dev/null ||
  not_run "cannot create mount/PID namespaces here (unshare failed: a container without CAP_SYS_ADMIN?)."
mkdir -p "$CACHE" || not_run "cannot create the cache directory $CACHE."
case "$CACHE/" in "$REPO"/*) not_run "the cache $CACHE must not be inside the repository." ;; esac
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  log "another run holds $CACHE/lock; waiting (at most 20 min)…"
  flock -w 1200 9 || not_run "another run kept $CACHE/lock for 20 minutes."
fi
rm -rf "$CACHE"/run.* # logs of earlier runs that were killed (we hold the lock)
WORKDIR=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf "$WORKDIR"' EXIT

# ---------------------------------------------------------------------------
build_rootfs() {
  local build=$CACHE/rootfs.build
  if ! command -v debootstrap >/dev/null; then
    phase "apt-get install debootstrap (host)"
    {
      # An unreachable third-party source fails update; what counts is whether install works.
      apt-get update -q || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
    } >"$WORKDIR/apt.log" 2>&1 ||
      not_run "could not install debootstrap with apt-get (no network to the Debian mirrors?)." \
        "$(tail_of "$WORKDIR/apt.log")"
  fi
  [[ -e /usr/share/debootstrap/scripts/$SUITE ]] ||
    not_run "this debootstrap does not know Debian '$SUITE' (upgrade the debootstrap package)."
  local free_kb
  free_kb=$(df -Pk "$CACHE" | awk 'NR==2 {print $4}')
  ((free_kb > 3 * 1024 * 1024)) || not_run "less than 3 GB free in $CACHE (the Wine root needs ~1.6 GB)."

  phase "debootstrap $SUITE (minbase)"
  rm -rf "$build"
  # In its own mount namespace: mounts debootstrap leaves behind on failure vanish with it.
  in_namespace debootstrap --variant=minbase "$SUITE" "$build" "$MIRROR" \
    >"$WORKDIR/debootstrap.log" 2>&1 || {
    rm -rf "$build"
    not_run "debootstrap of Debian $SUITE from $MIRROR failed (no network to the mirrors?)." \
      "$(tail_of "$WORKDIR/debootstrap.log")"
  }

  phase "apt-get install wine wine64 (chroot)"
  # shellcheck disable=SC2016
  in_namespace bash -c '
    set -e
    R=$1
    mount -t proc proc "$R/proc"
    mount --rbind /dev "$R/dev"
    mount -t tmpfs tmpfs "$R/tmp"
    cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
      sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends wine wine64 && apt-get clean"
  ' _ "$build" >"$WORKDIR/wine-install.log" 2>&1 || {
    rm -rf "$build"
    not_run "installing Wine inside the Debian $SUITE root failed (no network to the mirrors?)." \
      "$(tail_of "$WORKDIR/wine-install.log")"
  }
  echo "$RECIPE" >"$build/.intellistor-recipe"
  rm -rf "$ROOTFS"
  mv "$build" "$ROOTFS"
}

fetch_deno_exe() {
  phase "npm pack @deno/win32-x64@$DENO_VERSION"
  local dir=$WORKDIR/deno-pack
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "@deno/win32-x64@$DENO_VERSION" && tar -xzf ./*.tgz package/deno.exe) \
    >"$WORKDIR/npm-pack.log" 2>&1 ||
    not_run "could not get deno.exe with 'npm pack @deno/win32-x64@$DENO_VERSION' (no network to the npm registry?)." \
      "$(tail_of "$WORKDIR/npm-pack.log")"
  [[ $(head -c 2 "$dir/package/deno.exe") == MZ ]] || not_run "the deno.exe from npm is not a Windows executable."
  mkdir -p "$(dirname "$DENO_EXE")"
  mv "$dir/package/deno.exe" "$DENO_EXE"
}

prepare_linux_side() {
  phase "node_modules (Linux deno install)"
  # deno.exe reuses the node_modules made on Linux (--cached-only), and the npm
  # registry metadata in the Linux DENO_DIR (so cli_restore, which runs without
  # --cached-only, needs no network either).
  (cd "$REPO" && NO_COLOR=1 npx -y "deno@$DENO_VERSION" install --frozen) >"$WORKDIR/install.log" 2>&1 || {
    log "FAILED: 'deno install --frozen' on Linux:"
    tail_of "$WORKDIR/install.log"
    exit 1
  }
  LINUX_DENO_DIR=$(cd "$REPO" && NO_COLOR=1 npx -y "deno@$DENO_VERSION" info --json 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).denoDir))') ||
    LINUX_DENO_DIR=""
}

# Runs inside the namespace (as its PID 1): mounts, copies the repository into
# the chroot's /tmp, starts Wine, runs the test. Exit 97 = Wine itself does not
# work (an environment failure, not a test failure).
# shellcheck disable=SC2016
readonly NAMESPACE_SCRIPT='
set -uo pipefail
R=$ROOTFS
mount -t proc proc "$R/proc" && mount --rbind /dev "$R/dev" && mount --make-rslave "$R/dev" &&
  mount -t tmpfs -o size=4g,mode=1777 tmpfs "$R/tmp" || exit 97
cp /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
SRC=$R$SOURCE_IN_ROOT
mkdir -p "$SRC" "$R/tmp/xdg" && chmod 700 "$R/tmp/xdg"
tar -C "$REPO" --exclude=./.git -cf - . | tar -C "$SRC" -xf - || exit 97
if [[ -n $LINUX_DENO_DIR && -d $LINUX_DENO_DIR/npm ]]; then
  mkdir -p "$R/opt/deno-dir" && cp -a "$LINUX_DENO_DIR/npm" "$R/opt/deno-dir/" || exit 97
fi
wine_env=(/usr/bin/env -i HOME=/root USER=root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8
  XDG_RUNTIME_DIR=/tmp/xdg WINEPREFIX=/root/.wine WINEDEBUG=-all WINEDLLOVERRIDES=mscoree,mshtml=
  NO_COLOR=1 DENO_NO_UPDATE_CHECK=1 DENO_DIR="Z:\\opt\\deno-dir" INTELLISTOR_WINDOWS_E2E=1 INTELLISTOR_E2E_UNDER_WINE=1)
in_chroot() { chroot "$R" "${wine_env[@]}" "$@"; }
stop_wine() { in_chroot wineserver -k 2>/dev/null; in_chroot wineserver -w 2>/dev/null; }
trap stop_wine EXIT

if [[ ! -f $R/root/.wine/system.reg ]]; then
  echo "[windows-e2e] phase: wineboot (new Wine prefix)"
  t0=$(date +%s)
  in_chroot wineboot -i >/tmp/wineboot.log 2>&1 || { tail -n 15 /tmp/wineboot.log; exit 97; }
  in_chroot wineserver -w
  echo "[windows-e2e] phase done: wineboot ($(( $(date +%s) - t0 )) s)"
fi
mkdir -p "$(dirname "$R/$DENO_IN_PREFIX")"
cmp -s "$DENO_EXE" "$R/$DENO_IN_PREFIX" || cp "$DENO_EXE" "$R/$DENO_IN_PREFIX" || exit 97

version=$(cd "$SRC" && in_chroot wine "$DENO_WINDOWS_PATH" --version 2>&1) || {
  printf "%s\n" "$version" | tail -n 15
  exit 97
}
echo "[windows-e2e] under Wine $(in_chroot wine --version): $(printf "%s" "$version" | head -n 1 | tr -d "\r")"
echo "[windows-e2e] phase: deno.exe test (under Wine)"
t0=$(date +%s)
cd "$SRC"
chroot "$R" /bin/sh -c "cd \"\$1\" && shift && exec \"\$@\"" _ "$SOURCE_IN_ROOT" \
  "${wine_env[@]}" timeout -k 10 "$TIMEOUT" \
  wine "$DENO_WINDOWS_PATH" test -A --cached-only --no-check tests/windows/windows_e2e_test.ts \
  2>&1 | tr -d "\r" | tee /tmp/test.log
rc=${PIPESTATUS[0]}
echo "[windows-e2e] phase done: deno.exe test ($(( $(date +%s) - t0 )) s)"
if [[ $rc == 124 || $rc == 137 ]]; then
  echo "[windows-e2e] FAILED: the test did not finish within $TIMEOUT s."
  exit 1
fi
if [[ $rc == 0 ]] && ! grep -Eq "^ok \| 1 passed .*\| 0 failed" /tmp/test.log; then
  echo "[windows-e2e] FAILED: deno.exe exited 0 but the test did not run and pass (ignored?)."
  exit 1
fi
exit "$rc"
'

run_in_wine() {
  in_namespace env ROOTFS="$ROOTFS" REPO="$REPO" SOURCE_IN_ROOT="$SOURCE_IN_ROOT" \
    DENO_EXE="$DENO_EXE" DENO_IN_PREFIX="$DENO_IN_PREFIX" DENO_WINDOWS_PATH="$DENO_WINDOWS_PATH" \
    LINUX_DENO_DIR="$LINUX_DENO_DIR" TIMEOUT="$TIMEOUT" bash -c "$NAMESPACE_SCRIPT"
}

# ---------------------------------------------------------------------------
phase "cache check"
log "cache: $CACHE"
reused_root=1
if [[ $(cat "$ROOTFS/.intellistor-recipe" 2>/dev/null) != "$RECIPE" ]]; then
  reused_root=0
  build_rootfs
else
  log "reusing the Wine root $ROOTFS"
fi
if [[ -s $DENO_EXE ]]; then log "reusing $DENO_EXE"; else fetch_deno_exe; fi
prepare_linux_side

phase "Wine: prepare and run the test"
run_in_wine
rc=$?
if [[ $rc == 97 && $reused_root == 1 ]]; then
  log "Wine did not start from the cached root: rebuilding it once."
  rm -rf "$ROOTFS"
  build_rootfs
  phase "Wine: prepare and run the test (rebuilt root)"
  run_in_wine
  rc=$?
fi
print_timings
if [[ $rc == 97 ]]; then
  not_run "Wine 10 could not run deno.exe in $ROOTFS (see the output above)."
fi
if [[ $rc == 0 ]]; then
  log "PASSED: Windows end-to-end under Wine."
else
  log "FAILED: Windows end-to-end under Wine (exit code $rc)."
fi
exit "$rc"
