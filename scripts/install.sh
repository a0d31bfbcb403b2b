#!/bin/bash
# Installs (or upgrades) asterisk-bitrix24 as a systemd service. Idempotent: run it again after `git pull` to
# upgrade; a second run with nothing new changes nothing. An existing config is never overwritten.
#
#   sudo scripts/install.sh                 # from a checkout (or an unpacked release)
#   DESTDIR=/tmp/root NO_SYSTEMCTL=1 scripts/install.sh   # into a scratch root, as any user (CI, packaging)
#
# Options / environment:
#   --no-systemctl | NO_SYSTEMCTL=1   do not call systemctl (no daemon-reload / enable / restart)
#   DESTDIR=DIR                       install under DIR instead of /; no user is created, no owner changed
#   PREFIX=/opt/asterisk-bitrix24     where the program goes (the unit file's paths follow it)
#   NPM=npm                           the npm used once to fetch the dependencies
#
# Layout: program in $PREFIX, config in /etc/asterisk-bitrix24/ (config.yaml, env for secrets, customizations/),
# state in /var/lib/asterisk-bitrix24/, unit in /etc/systemd/system/, launcher /usr/local/bin/asterisk-bitrix24,
# logs in the journal.
set -euo pipefail

NAME=asterisk-bitrix24
SERVICE_USER=$NAME
PREFIX=${PREFIX:-/opt/$NAME}
DESTDIR=${DESTDIR:-}
NO_SYSTEMCTL=${NO_SYSTEMCTL:-0}
NPM=${NPM:-npm}

for arg in "$@"; do
  case $arg in
    --no-systemctl) NO_SYSTEMCTL=1 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
root=${DESTDIR%/}
prefix=$root$PREFIX
etc=$root/etc/$NAME
state=$root/var/lib/$NAME
unit=$root/etc/systemd/system/$NAME.service
launcher=$root/usr/local/bin/$NAME
# Owners are set only on a real system as root; a scratch root belongs to whoever builds it.
manage_owners=0
if [ -z "$root" ]; then
  [ "$(id -u)" = 0 ] || die "run as root (or set DESTDIR to install into a scratch root)"
  manage_owners=1
fi
changed=0

# 1. The service user: a system account without a shell, home = the state directory.
if [ "$manage_owners" = 1 ]; then
  if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "/var/lib/$NAME" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    say "created system user $SERVICE_USER"
  fi
  # Recordings are usually readable by the asterisk group only.
  if getent group asterisk >/dev/null && ! id -nG "$SERVICE_USER" | tr ' ' '\n' | grep -qx asterisk; then
    usermod -a -G asterisk "$SERVICE_USER"
    say "added $SERVICE_USER to group asterisk (to read the recordings)"
  fi
fi

# 2. The program. Skipped when running from the install location itself (a git clone into $PREFIX).
if [ "$(readlink -f "$prefix" 2>/dev/null || true)" != "$src" ]; then
  install -d -m 0755 "$prefix"
  for item in src scripts systemd config customizations package.json package-lock.json README.md LICENSE; do
    [ -e "$src/$item" ] || continue
    if ! diff -rq "$src/$item" "$prefix/$item" >/dev/null 2>&1; then
      rm -rf "${prefix:?}/$item"
      cp -R "$src/$item" "$prefix/$item"
      changed=1
    fi
  done
  [ "$changed" = 1 ] && say "program copied to $prefix" || say "program in $prefix is up to date"
fi

# 3. Dependencies, with Node.js 24 among them (the `node` package): npm runs install scripts with
#    node_modules/.bin first on PATH, so native modules (better-sqlite3) are built for that bundled runtime,
#    whatever the system's Node version. Skipped when package-lock.json has not changed since the last run.
stamp=$prefix/node_modules/.$NAME-lock.sha256
want=$(sha256sum < "$prefix/package-lock.json" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$prefix/node_modules/.bin/node" ]; then
  say "dependencies are up to date"
else
  command -v "$NPM" >/dev/null || die "npm is needed once to fetch the dependencies (apt-get install npm)"
  say "installing dependencies (npm ci --omit=dev) in $prefix"
  (cd "$prefix" && "$NPM" ci --omit=dev --no-audit --no-fund)
  echo "$want" > "$stamp"
  changed=1
fi
version=$("$prefix/node_modules/.bin/node" --version) || die "the bundled Node.js runtime does not run"
case $version in
  v2[4-9].*|v[3-9][0-9].*) say "bundled Node.js $version" ;;
  *) die "the bundled Node.js is $version, 24 or newer is needed" ;;
esac

# 4. Configuration: created from the example on first install, never overwritten afterwards.
install -d -m 0750 "$etc" "$etc/customizations"
if [ -e "$etc/config.yaml" ]; then
  say "kept the existing $etc/config.yaml"
else
  install -m 0640 "$src/config/example.yaml" "$etc/config.yaml"
  say "created $etc/config.yaml from config/example.yaml: edit it, then: $NAME check --config /etc/$NAME/config.yaml"
fi
if [ ! -e "$etc/env" ]; then
  printf '# Secrets referenced from config.yaml as ${NAME} (read by systemd, EnvironmentFile=), e.g.\n# AMI_SECRET=...\n# B24_WEBHOOK_SECRET=...\n' > "$etc/env"
  chmod 0600 "$etc/env"
fi
if [ "$manage_owners" = 1 ]; then
  chgrp "$SERVICE_USER" "$etc" "$etc/config.yaml" "$etc/customizations"
fi

# 5. State directory (systemd's StateDirectory= would create it too; created here for `check` and `status`).
install -d -m 0750 "$state"
if [ "$manage_owners" = 1 ]; then chown "$SERVICE_USER:$SERVICE_USER" "$state"; fi

# 6. The unit (paths follow PREFIX) and the launcher on PATH.
unit_text=$(sed "s#/opt/$NAME#$PREFIX#g" "$src/systemd/$NAME.service")
unit_changed=0
if [ ! -f "$unit" ] || [ "$(cat "$unit")" != "$unit_text" ]; then
  install -d -m 0755 "$(dirname "$unit")"
  printf '%s\n' "$unit_text" > "$unit"
  chmod 0644 "$unit"
  unit_changed=1
  say "installed $unit"
fi
install -d -m 0755 "$(dirname "$launcher")"
if [ "$(readlink "$launcher" 2>/dev/null || true)" != "$PREFIX/scripts/$NAME" ]; then
  ln -sfn "$PREFIX/scripts/$NAME" "$launcher"
  say "linked $launcher"
fi

# 7. systemd: enable (start at boot); an upgrade of a running service restarts it.
if [ "$NO_SYSTEMCTL" = 1 ]; then
  say "not calling systemctl (--no-systemctl)"
elif [ -n "$root" ]; then
  systemctl --root="$root" enable "$NAME.service" >/dev/null
  say "enabled $NAME.service in $root"
else
  [ "$unit_changed" = 1 ] && systemctl daemon-reload
  systemctl enable "$NAME.service" >/dev/null 2>&1 || systemctl enable "$NAME.service"
  if systemctl is-active --quiet "$NAME.service"; then
    if [ "$changed" = 1 ] || [ "$unit_changed" = 1 ]; then systemctl restart "$NAME.service"; say "restarted $NAME"; fi
  else
    say "enabled; start it once the config is ready: systemctl start $NAME && journalctl -u $NAME -f"
  fi
fi
say "done"
