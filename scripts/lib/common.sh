# shellcheck shell=bash
# Helpers shared by scripts/broker and scripts/install-deps (sourced, not executed).

RMQS_STATE=${RMQS_STATE:-$HOME/.rmqstream}
_T0=${EPOCHREALTIME//[!0-9]/}

# log MSG...: "[hh:mm:ss +elapsed] MSG" on stderr (stdout stays clean for `uri`, `tls-dir`, ...)
log() {
  local now=${EPOCHREALTIME//[!0-9]/} d
  d=$(((now - _T0) / 100000))
  printf '[%(%H:%M:%S)T +%4d.%ds] %s\n' -1 $((d / 10)) $((d % 10)) "$*" >&2
}
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
need_root() { [ "$(id -u)" = 0 ] || die "must run as root (needs chroot, mount and apt)"; }

# The Debian mirror this host's apt uses (MIRROR=... overrides).
debian_mirror() {
  local m=${MIRROR:-}
  if [ -z "$m" ] && [ -r /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -r /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^[a-z]+:\/\//){print $i; exit}}' /etc/apt/sources.list)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# apt_missing PKG...: prints the packages that are not installed on the host.
apt_missing() {
  local p st
  for p in "$@"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = installed ] || echo "$p"
  done
}

_net_re='Could not resolve|Temporary failure resolving|Failed to fetch|Could not connect|Connection failed|Unable to connect|Network is unreachable|Connection timed out|No route to host'

# apt_run LOG CMD...: run an apt command (optionally under `chroot DIR`), append its output to LOG;
# on failure, or when apt only warned about unreachable mirrors, say so clearly and fail.
apt_run() {
  local logf=$1 out rc=0; shift
  out=$(mktemp)
  DEBIAN_FRONTEND=noninteractive "$@" >"$out" 2>&1 || rc=$?
  cat "$out" >>"$logf"
  if grep -qE "$_net_re" "$out"; then
    grep -E "$_net_re" "$out" | head -3 >&2
    rm -f "$out"
    die "cannot reach the Debian mirror: no network? ('$*' failed; log: $logf)"
  fi
  if [ "$rc" != 0 ]; then
    tail -15 "$out" >&2
    rm -f "$out"
    die "'$*' failed with rc=$rc (log: $logf)"
  fi
  rm -f "$out"
}

# apt_install_host LOG PKG...: apt-get update + install of the missing ones (no-op if all present).
apt_install_host() {
  local logf=$1; shift
  local missing
  missing=$(apt_missing "$@" | tr '\n' ' ')
  [ -n "${missing// /}" ] || return 0
  log "apt-get update (to install: $missing)"
  apt_run "$logf" apt-get -o DPkg::Lock::Timeout=300 update
  log "apt-get install $missing"
  # shellcheck disable=SC2086  # word splitting of the package list is intended
  apt_run "$logf" apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends $missing
}
