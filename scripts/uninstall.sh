#!/bin/bash
# Removes what scripts/install.sh installed: the service, its unit, the launcher and the program. The
# configuration (/etc/asterisk-bitrix24) and the state (/var/lib/asterisk-bitrix24: queued requests, calls in
# progress, OAuth tokens) are kept unless --purge, which also removes the service user.
#
#   sudo scripts/uninstall.sh [--purge] [--no-systemctl]
#   DESTDIR=/tmp/root NO_SYSTEMCTL=1 scripts/uninstall.sh --purge   # a scratch root, as any user
set -euo pipefail

NAME=asterisk-bitrix24
SERVICE_USER=$NAME
PREFIX=${PREFIX:-/opt/$NAME}
DESTDIR=${DESTDIR:-}
NO_SYSTEMCTL=${NO_SYSTEMCTL:-0}
purge=0

for arg in "$@"; do
  case $arg in
    --purge) purge=1 ;;
    --no-systemctl) NO_SYSTEMCTL=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "uninstall: $*"; }
root=${DESTDIR%/}
[ -n "$root" ] || [ "$(id -u)" = 0 ] || { echo "uninstall: run as root (or set DESTDIR)" >&2; exit 1; }
prefix=$root$PREFIX
unit=$root/etc/systemd/system/$NAME.service
launcher=$root/usr/local/bin/$NAME

if [ "$NO_SYSTEMCTL" != 1 ] && [ -f "$unit" ]; then
  if [ -n "$root" ]; then
    systemctl --root="$root" disable "$NAME.service" >/dev/null 2>&1 || true
  else
    systemctl disable --now "$NAME.service" >/dev/null 2>&1 || true
  fi
  say "stopped and disabled $NAME.service"
fi
if [ -f "$unit" ]; then
  rm -f "$unit"
  say "removed $unit"
  [ "$NO_SYSTEMCTL" != 1 ] && [ -z "$root" ] && systemctl daemon-reload
fi
if [ -L "$launcher" ]; then rm -f "$launcher"; say "removed $launcher"; fi
if [ -d "$prefix" ]; then rm -rf "${prefix:?}"; say "removed $prefix"; fi

if [ "$purge" = 1 ]; then
  rm -rf "${root}/etc/${NAME:?}" "${root}/var/lib/${NAME:?}"
  say "removed /etc/$NAME and /var/lib/$NAME"
  if [ -z "$root" ] && id -u "$SERVICE_USER" >/dev/null 2>&1; then
    userdel "$SERVICE_USER"
    say "removed user $SERVICE_USER"
  fi
else
  say "kept /etc/$NAME (config) and /var/lib/$NAME (state); --purge removes them"
fi
say "done"
