#!/usr/bin/env bash
# The Debian package and `cmake --install` (docs/packaging.md): builds the
# .deb with CPack from this build tree and checks what it holds and does:
# the files and their modes, the control fields and conffiles, the shipped
# texts equal to their sources, man pages that render without warnings and
# cover every command of `cmbridge --help`, a bash completion that offers
# exactly those commands and options, the user and directories that
# sysusers.d and tmpfiles.d make, a real logrotate run, the maintainer
# scripts' exact actions (run against stubs under $DPKG_ROOT), lintian; and
# that `cmake --install` into a DESTDIR puts the same files in place.
# Skips (77) only where Debian's package tools cannot exist (no dpkg-deb).
. "$(dirname "$0")/lib.sh"
SRC=$CMB_SOURCE_DIR
BUILD=$CMB_BUILD_DIR

if ! command -v dpkg-deb >/dev/null; then
  echo "SKIP: no dpkg-deb: not a Debian system, no .deb can be built here"
  exit 77
fi
# The rest comes with deploy/install-deps.sh: missing, it is a failure.
for t in dpkg-shlibdeps:dpkg-dev man:man-db groff:groff-base lintian:lintian logrotate:logrotate \
         systemd-sysusers:systemd systemd-tmpfiles:systemd readelf:binutils; do
  command -v "${t%%:*}" >/dev/null || { echo "FAIL: ${t%%:*} is missing (Debian package ${t#*:}; deploy/install-deps.sh)"; exit 1; }
done

# expect_same WHAT EXPECTED-FILE ACTUAL-FILE: equal, else the diff.
expect_same() {
  CHECKS=$((CHECKS + 1))
  if diff -u "$2" "$3" > "$TMP/diff"; then
    printf 'ok:   %s\n' "$1"
  else
    printf 'FAIL: %s:\n' "$1"; sed 's/^/    /' "$TMP/diff"
    FAILS=$((FAILS + 1))
  fi
}
sorted() { printf '%s\n' "$@" | sed '/^$/d' | sort; }

say "cpack -G DEB"
ARCH=$(dpkg --print-architecture)
DEB="$TMP/cpack/cmbridge_${CMB_VERSION}-1_${ARCH}.deb"
(cd "$BUILD" && "$CPACK" -G DEB -B "$TMP/cpack" > "$TMP/cpack.log" 2>&1) || { cat "$TMP/cpack.log"; echo "FAIL: cpack"; exit 1; }
expect_eq "the package file" "$DEB" "$(ls "$TMP"/cpack/*.deb)"
# lintian takes longest: it runs while the rest is checked, judged at the end.
lintian --display-info --pedantic "$DEB" > "$TMP/lintian.out" 2>"$TMP/lintian.err" &
lintian_pid=$!
PKG="$TMP/pkg"
dpkg-deb -x "$DEB" "$PKG"
dpkg-deb -e "$DEB" "$TMP/control"

say "the files and their modes"
UNIT=./usr/lib/systemd/system/cmbridge.service
expected=(
  "-rw-r----- root/root ./etc/cmbridge/cmbridge.conf"
  "-rw-r--r-- root/root ./etc/logrotate.d/cmbridge"
  "-rwxr-xr-x root/root ./usr/bin/cmbridge"
  "-rw-r--r-- root/root ./usr/lib/sysusers.d/cmbridge.conf"
  "-rw-r--r-- root/root ./usr/lib/tmpfiles.d/cmbridge.conf"
  "-rw-r--r-- root/root ./usr/share/bash-completion/completions/cmbridge"
  "-rw-r--r-- root/root ./usr/share/doc/cmbridge/README.md"
  "-rw-r--r-- root/root ./usr/share/doc/cmbridge/changelog.Debian.gz"
  "-rw-r--r-- root/root ./usr/share/lintian/overrides/cmbridge"
  "-rw-r--r-- root/root ./usr/share/man/man5/cmbridge.conf.5.gz"
  "-rw-r--r-- root/root ./usr/share/man/man8/cmbridge.8.gz"
)
for d in "$SRC"/docs/*.md; do
  [ "$(basename "$d")" = lab.md ] || expected+=("-rw-r--r-- root/root ./usr/share/doc/cmbridge/docs/$(basename "$d")")
done
[ -f "$SRC/LICENSE" ] && expected+=("-rw-r--r-- root/root ./usr/share/doc/cmbridge/copyright")
if [ -f "$SRC/deploy/cmbridge.service" ]; then
  expected+=("-rw-r--r-- root/root $UNIT")
else
  echo "SKIP (one check): deploy/cmbridge.service is not in this source tree (it comes with branch daemon-ops), so the package has no unit to check"
fi
sorted "${expected[@]}" > "$TMP/files.expected"
dpkg-deb -c "$DEB" | awk '$1 !~ /^d/ { print $1, $2, $6 }' | sort > "$TMP/files.deb"
expect_same "the package holds exactly these files, with these modes" "$TMP/files.expected" "$TMP/files.deb"
expect_eq "the binary is stripped (no .symtab, no .debug_*)" 0 \
  "$(readelf -S "$PKG/usr/bin/cmbridge" | grep -cE '\.symtab|\.debug_')"
expect_eq "the packaged binary holds no test hook (docs/state.md: cmbridge-test only)" 0 \
  "$(grep -c CMB_CRASH_AFTER_COMMIT "$PKG/usr/bin/cmbridge")"

say "the control fields and the conffiles"
expect_eq "Package" cmbridge "$(dpkg-deb -f "$DEB" Package)"
expect_eq "Version: project(), Debian revision 1" "${CMB_VERSION}-1" "$(dpkg-deb -f "$DEB" Version)"
expect_eq "Architecture" "$ARCH" "$(dpkg-deb -f "$DEB" Architecture)"
expect_eq "Section" admin "$(dpkg-deb -f "$DEB" Section)"
expect_eq "Priority" optional "$(dpkg-deb -f "$DEB" Priority)"
expect_match "Maintainer: a name and an address" '^[^<]+ <[^@ ]+@[^> ]+>$' "$(dpkg-deb -f "$DEB" Maintainer)"
dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' | sort > "$TMP/depends.deb"
sorted ca-certificates libc6 libcurl4 libinih1 libmicrohttpd12 libsqlite3-0 libssl3 libxml2 libyajl2 zlib1g > "$TMP/depends.expected"
expect_same "Depends: the libraries dpkg-shlibdeps found, and ca-certificates" "$TMP/depends.expected" "$TMP/depends.deb"
expect_match "Depends: versioned by dpkg-shlibdeps" 'libc6 \(>= [0-9.]+\)' "$(dpkg-deb -f "$DEB" Depends)"
sorted /etc/cmbridge/cmbridge.conf /etc/logrotate.d/cmbridge > "$TMP/conffiles.expected"
sort "$TMP/control/conffiles" > "$TMP/conffiles.deb"
expect_same "conffiles: the configuration and the logrotate snippet" "$TMP/conffiles.expected" "$TMP/conffiles.deb"
for s in postinst prerm postrm; do
  expect_eq "$s: mode 755" 755 "$(command stat -c %a "$TMP/control/$s")"
  expect_eq "$s: the one in deploy/debian" same "$(cmp -s "$SRC/deploy/debian/$s" "$TMP/control/$s" && echo same)"
done

say "the shipped texts are their sources"
for pair in cmbridge.conf:etc/cmbridge/cmbridge.conf cmbridge.logrotate:etc/logrotate.d/cmbridge \
            cmbridge.sysusers:usr/lib/sysusers.d/cmbridge.conf cmbridge.tmpfiles:usr/lib/tmpfiles.d/cmbridge.conf \
            cmbridge.bash-completion:usr/share/bash-completion/completions/cmbridge \
            debian/lintian-overrides:usr/share/lintian/overrides/cmbridge; do
  expect_eq "/${pair#*:} is deploy/${pair%%:*}" same "$(cmp -s "$SRC/deploy/${pair%%:*}" "$PKG/${pair#*:}" && echo same)"
done
if [ -f "$SRC/deploy/cmbridge.service" ]; then
  expect_eq "$UNIT is deploy/cmbridge.service" same "$(cmp -s "$SRC/deploy/cmbridge.service" "$PKG/$UNIT" && echo same)"
fi
expect_match "changelog.Debian: one entry for this version" "^cmbridge \\(${CMB_VERSION}-1\\) unstable; urgency=medium" \
  "$(zcat "$PKG/usr/share/doc/cmbridge/changelog.Debian.gz")"

say "cmake --install into a DESTDIR puts the same files in place"
DEST="$TMP/destdir"
DESTDIR="$DEST" "$CMAKE" --install "$BUILD" --prefix /usr --strip > "$TMP/install.log" 2>&1 || { cat "$TMP/install.log"; echo "FAIL: cmake --install"; exit 1; }
(cd "$DEST" && find . -type f -printf '%M %p\n' | sort) > "$TMP/files.destdir"
awk '{ print $1, $3 }' "$TMP/files.deb" > "$TMP/files.deb.modes"
expect_same "cmake --install: the package's files, with the same modes" "$TMP/files.deb.modes" "$TMP/files.destdir"
differ=$(cd "$PKG" && find . -type f ! -path ./usr/bin/cmbridge -exec sh -c 'cmp -s "$1" "$2/$1" || echo "$1"' _ {} "$DEST" \;)
expect_eq "cmake --install: every file but the binary has the package's bytes" "" "$differ"
echo "# the admin's" >> "$DEST/etc/cmbridge/cmbridge.conf"
cp "$DEST/etc/cmbridge/cmbridge.conf" "$TMP/admins.conf"
DESTDIR="$DEST" "$CMAKE" --install "$BUILD" --prefix /usr --strip > "$TMP/install2.log" 2>&1
expect_eq "cmake --install again: a changed configuration is kept" same \
  "$(cmp -s "$TMP/admins.conf" "$DEST/etc/cmbridge/cmbridge.conf" && echo same)"
expect_eq "... the new sample beside it as cmbridge.conf.dpkg-dist" same \
  "$(cmp -s "$SRC/deploy/cmbridge.conf" "$DEST/etc/cmbridge/cmbridge.conf.dpkg-dist" && echo same)"
expect_eq "... an unchanged logrotate snippet is simply installed again" "" \
  "$(ls "$DEST/etc/logrotate.d" | grep -v '^cmbridge$')"
LABDEST="$TMP/labdest"
DESTDIR="$LABDEST" "$CMAKE" --install "$BUILD" --prefix /usr --component lab > "$TMP/install-lab.log" 2>&1 || { cat "$TMP/install-lab.log"; echo "FAIL: cmake --install --component lab"; exit 1; }
expect_eq "--component lab: the lab and its man page, nothing else" \
  "./usr/bin/cmbridge-lab ./usr/share/man/man1/cmbridge-lab.1.gz" \
  "$(cd "$LABDEST" && find . -type f | sort | tr '\n' ' ' | sed 's/ $//')"

say "man pages render without warnings"
for m in "$PKG/usr/share/man/man8/cmbridge.8.gz" "$PKG/usr/share/man/man5/cmbridge.conf.5.gz" \
         "$LABDEST/usr/share/man/man1/cmbridge-lab.1.gz"; do
  n=$(basename "$m" .gz)
  # lintian's own check, then groff with every warning on.
  w=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$m" 2>&1 >/dev/null)
  expect_eq "$n: man --warnings says nothing" "" "$w"
  w=$(zcat "$m" | groff -man -ww -z -Tutf8 2>&1)
  expect_eq "$n: groff -ww says nothing" "" "$w"
  expect_match "$n: .TH names version $CMB_VERSION" "^\\.TH .* \"cmbridge $CMB_VERSION\"" "$(zcat "$m" | grep '^\.TH')"
done

say "cmbridge(8) and the bash completion cover cmbridge --help"
# One line per command: NAME|--options|words|--option=value; and "-" for the global options.
"$CMBRIDGE" --help | python3 -c '
import re, sys
cmds, section, glob = {}, None, []
for line in sys.stdin.read().splitlines():
    if line in ("commands:", "options:"):
        section = line[:-1]; continue
    if not line.strip():
        section = None; continue
    if section == "commands" and re.match(r"  [a-z]", line):
        synopsis = re.split(r"\s{2,}", line.strip())[0].split()
        c = cmds.setdefault(synopsis[0], [set(), set(), set()])
        prev = None
        for tok in (t.strip("[]|.") for t in synopsis[1:]):
            if tok.startswith("--"):
                c[0].add(tok)
            elif re.fullmatch(r"[a-z]+", tok) and prev:
                c[2].add(prev + "=" + tok)
            elif re.fullmatch(r"[a-z]+", tok):
                c[1].add(tok)
            prev = tok if tok.startswith("--") else None
    elif section == "options":
        glob += re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", re.split(r"\s{2,}", line.strip())[0])
for name, (opts, words, values) in cmds.items():
    print("|".join([name, " ".join(sorted(opts)), " ".join(sorted(words)), " ".join(sorted(values))]))
print("-|" + " ".join(sorted(glob)) + "||")
' > "$TMP/help.txt"
all_commands=$(cut -d'|' -f1 "$TMP/help.txt" | grep -v '^-$' | sort | tr '\n' ' ' | sed 's/ $//')
# The command table of cli.c: its rows' .name = "name".
table=$(grep -oE '\.name = "[a-z]+"' "$SRC/connector/daemon/cli.c" |
  grep -oE '"[a-z]+"' | tr -d '"' | sort -u | tr '\n' ' ' | sed 's/ $//')
expect_eq "cmbridge --help lists the commands of cli.c's table (if it finds none, the table changed shape: update this check)" \
  "$table" "$all_commands"

MANTXT=$(MANWIDTH=200 man -E ascii -l "$PKG/usr/share/man/man8/cmbridge.8.gz" 2>/dev/null)
commands_section=$(printf '%s\n' "$MANTXT" | sed -n '/^COMMANDS/,/^OPTIONS/p')
options_section=$(printf '%s\n' "$MANTXT" | sed -n '/^OPTIONS/,/^EXIT STATUS/p')

# complete WORD...: what the completion offers for `cmbridge WORD...` (the last word being typed).
complete_words() {
  bash -c '. "$1"; shift; COMP_WORDS=(cmbridge "$@"); COMP_CWORD=$#; _cmbridge; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$PKG/usr/share/bash-completion/completions/cmbridge" "$@" | sed '/^$/d' | sort | tr '\n' ' ' | sed 's/ $//'
}
expect_eq "completion: cmbridge <TAB> offers every command" "$all_commands" "$(complete_words "")"
while IFS='|' read -r name opts words values; do
  if [ "$name" = - ]; then
    expect_eq "completion: cmbridge -<TAB> offers the global options" "$(sorted $opts | tr '\n' ' ' | sed 's/ $//')" "$(complete_words -)"
    for o in $opts; do
      expect_match "cmbridge(8) OPTIONS has $o" "^       (-., )?$o(,| |$)" "$(printf '%s\n' "$options_section" | grep -E -- "^       -")"
    done
    continue
  fi
  expect_eq "completion: cmbridge $name --<TAB>" "$opts" "$(complete_words "$name" --)"
  expect_eq "completion: cmbridge -c FILE $name --<TAB> (-c's file is not the command)" "$opts" \
    "$(complete_words -c /etc/cmbridge/cmbridge.conf "$name" --)"
  for w in $words; do
    expect_match "completion: cmbridge $name <TAB> offers $w" "(^| )$w( |$)" "$(complete_words "$name" "")"
  done
  for v in $values; do
    expect_eq "completion: cmbridge $name ${v%%=*} <TAB>" "${v#*=}" "$(complete_words "$name" "${v%%=*}" "")"
  done
  tag=$(printf '%s\n' "$commands_section" | grep -E "^       $name( |$)" | head -1)
  expect_match "cmbridge(8) COMMANDS has $name" "^       $name( |$)" "$tag"
  for o in $opts $words; do
    expect_match "cmbridge(8): $name's entry names $o" "(^|[ [])$o([] ]|$)" "$tag"
  done
done < "$TMP/help.txt"

say "sysusers.d and tmpfiles.d: the user cmbridge and its directories"
ROOT="$TMP/sysroot"
mkdir -p "$ROOT/etc"
systemd-sysusers --root="$ROOT" "$PKG/usr/lib/sysusers.d/cmbridge.conf" > "$TMP/sysusers.log" 2>&1
expect_eq "systemd-sysusers: exit 0" 0 $?
expect_match "the user cmbridge: its group, home /var/lib/cmbridge, no shell" \
  '^cmbridge:x:[0-9]+:[0-9]+:cmbridge connector:/var/lib/cmbridge:/usr/sbin/nologin$' "$(grep '^cmbridge:' "$ROOT/etc/passwd")"
uid=$(awk -F: '$1 == "cmbridge" { print $3 }' "$ROOT/etc/passwd")
gid=$(awk -F: '$1 == "cmbridge" { print $3 }' "$ROOT/etc/group")
expect_eq "the group cmbridge is the user's" "$(awk -F: '$1 == "cmbridge" { print $4 }' "$ROOT/etc/passwd")" "$gid"
systemd-tmpfiles --root="$ROOT" --create "$PKG/usr/lib/tmpfiles.d/cmbridge.conf" > "$TMP/tmpfiles.log" 2>&1
expect_eq "systemd-tmpfiles --create: exit 0" 0 $?
state_dir=$(sed -n 's/^#state_dir = //p' "$PKG/etc/cmbridge/cmbridge.conf")
expect_eq "the state directory is [connector] state_dir's default" /var/lib/cmbridge "$state_dir"
for d in "$state_dir" /var/log/cmbridge; do
  expect_eq "$d: 0750 cmbridge:cmbridge" "750 $uid $gid" "$(command stat -c '%a %u %g' "$ROOT$d" 2>&1)"
done

say "logrotate: a real rotation (in $TMP, as this user)"
LOGS="$TMP/logs"
mkdir "$LOGS"
me="$(id -un) $(id -gn)"
sed -e "s|^/var/log/cmbridge/|$LOGS/|" -e "s|su cmbridge cmbridge|su $me|" \
    -e "s|create 0640 cmbridge cmbridge|create 0640 $me|" "$PKG/etc/logrotate.d/cmbridge" > "$TMP/logrotate.conf"
expect_eq "the test changed only the path and the two user names" 3 \
  "$(diff "$PKG/etc/logrotate.d/cmbridge" "$TMP/logrotate.conf" | grep -c '^>')"
echo "first week" > "$LOGS/cmbridge.log"
logrotate -f -s "$TMP/logrotate.state" "$TMP/logrotate.conf" > "$TMP/logrotate.log" 2>&1
expect_eq "logrotate: exit 0" 0 $?
expect_eq "the log moved to cmbridge.log.1" "first week" "$(cat "$LOGS/cmbridge.log.1" 2>&1)"
expect_eq "a new empty cmbridge.log, 0640" "640 0" "$(command stat -c '%a %s' "$LOGS/cmbridge.log" 2>&1)"
echo "second week" > "$LOGS/cmbridge.log"
logrotate -f -s "$TMP/logrotate.state" "$TMP/logrotate.conf" >> "$TMP/logrotate.log" 2>&1
expect_eq "delaycompress: the newest old log stays plain, the one before is compressed" \
  "second week|first week" "$(cat "$LOGS/cmbridge.log.1")|$(zcat "$LOGS/cmbridge.log.2.gz" 2>&1)"

say "maintainer scripts, against stubs, under \$DPKG_ROOT"
STUBS="$TMP/stubs"
mkdir "$STUBS"
CALLS="$TMP/calls"
stub() { # stub NAME [EXIT]: logs its arguments to $CALLS
  printf '#!/bin/sh\necho "%s $*" >> "%s"\nexit %s\n' "$1" "$CALLS" "${2:-0}" > "$STUBS/$1"
  chmod +x "$STUBS/$1"
}
for s in systemd-sysusers systemd-tmpfiles chown chmod systemctl deb-systemd-invoke deb-systemd-helper useradd; do stub "$s"; done
stub dpkg-statoverride 1   # no override
stub getent 2              # no such user
R="$TMP/dpkgroot"
mkdir -p "$R/etc/cmbridge" "$R/var/lib" "$R/var/log" && cp "$PKG/etc/cmbridge/cmbridge.conf" "$R/etc/cmbridge/"
run_script() { : > "$CALLS"; DPKG_ROOT=$1 PATH=$2 /bin/sh "$TMP/control/$3" "${@:4}"; }

run_script "$R" "$STUBS:$PATH" postinst configure
expect_eq "postinst configure: exit 0" 0 $?
cat > "$TMP/calls.expected" <<EOC
systemd-sysusers --root=$R cmbridge.conf
systemd-tmpfiles --root=$R --create cmbridge.conf
dpkg-statoverride --root=$R --list /etc/cmbridge
chown root:cmbridge $R/etc/cmbridge
chmod 0750 $R/etc/cmbridge
dpkg-statoverride --root=$R --list /etc/cmbridge/cmbridge.conf
chown root:cmbridge $R/etc/cmbridge/cmbridge.conf
chmod 0640 $R/etc/cmbridge/cmbridge.conf
EOC
expect_same "postinst configure (first install): user, directories, the configuration's group; nothing started" \
  "$TMP/calls.expected" "$CALLS"

# No systemd tools: useradd and mkdir instead; only stubs and mkdir on the PATH.
BARE="$TMP/bare"
mkdir "$BARE"
for s in chown chmod useradd dpkg-statoverride getent; do ln -s "$STUBS/$s" "$BARE/$s"; done
ln -s "$(command -v mkdir)" "$BARE/mkdir"
run_script "$R" "$BARE" postinst configure
expect_eq "postinst without systemd-sysusers and systemd-tmpfiles: exit 0" 0 $?
cat > "$TMP/calls.expected" <<EOC
getent passwd cmbridge
useradd --prefix $R --system --user-group --home-dir /var/lib/cmbridge --no-create-home --shell /usr/sbin/nologin --comment cmbridge connector cmbridge
dpkg-statoverride --root=$R --list /var/lib/cmbridge
chown cmbridge:cmbridge $R/var/lib/cmbridge
chmod 0750 $R/var/lib/cmbridge
dpkg-statoverride --root=$R --list /var/log/cmbridge
chown cmbridge:cmbridge $R/var/log/cmbridge
chmod 0750 $R/var/log/cmbridge
dpkg-statoverride --root=$R --list /etc/cmbridge
chown root:cmbridge $R/etc/cmbridge
chmod 0750 $R/etc/cmbridge
dpkg-statoverride --root=$R --list /etc/cmbridge/cmbridge.conf
chown root:cmbridge $R/etc/cmbridge/cmbridge.conf
chmod 0640 $R/etc/cmbridge/cmbridge.conf
EOC
expect_same "postinst without systemd tools: the same user and directories by useradd and mkdir" "$TMP/calls.expected" "$CALLS"
expect_eq "... the directories exist" "yes yes" "$([ -d "$R/var/lib/cmbridge" ] && echo yes) $([ -d "$R/var/log/cmbridge" ] && echo yes)"

stub dpkg-statoverride 0   # an admin's override for every path
run_script "$R" "$STUBS:$PATH" postinst configure "0.0.9-1"
grep -c '^ch' "$CALLS" > "$TMP/n"
expect_eq "postinst: dpkg-statoverride's modes win (no chown, no chmod)" 0 "$(cat "$TMP/n")"
stub dpkg-statoverride 1

# The systemd steps only run on the real root with systemd running: what
# they are here depends on this machine, the stubs take them either way.
run_script "" "$STUBS:$PATH" postinst configure "0.0.9-1"
if [ -d /run/systemd/system ]; then
  want="systemctl --system daemon-reload|deb-systemd-invoke try-restart cmbridge.service"
else
  want=""
fi
expect_eq "postinst configure OLD-VERSION (upgrade): daemon-reload and try-restart only under systemd" \
  "$want" "$(grep -E '^(systemctl|deb-systemd)' "$CALLS" | paste -sd'|')"
run_script "" "$STUBS:$PATH" postinst configure
expect_eq "postinst configure (first install): never starts the service" "" \
  "$(grep -E 'try-restart|start|enable' "$CALLS")"
run_script "" "$STUBS:$PATH" prerm remove
expect_eq "prerm remove: stops the service only under systemd" \
  "$([ -d /run/systemd/system ] && echo 'deb-systemd-invoke stop cmbridge.service')" "$(cat "$CALLS")"
run_script "" "$STUBS:$PATH" prerm upgrade "${CMB_VERSION}-1"
expect_eq "prerm upgrade: leaves it running" "" "$(cat "$CALLS")"

mkdir -p "$R/var/lib/cmbridge" "$R/var/log/cmbridge"
touch "$R/var/lib/cmbridge/"{cmbridge.db,cmbridge.db-wal,cmbridge.db-shm,cmbridge.lock,admin.keytab} \
      "$R/var/log/cmbridge/"{cmbridge.log,cmbridge.log.1,cmbridge.log.2.gz}
rm -f "$R/etc/cmbridge/cmbridge.conf"   # dpkg removes the conffiles before postrm purge
snapshot() { (cd "$R" && find . | sort | tr '\n' ' ' | sed 's/ $//'); }
before=$(snapshot)
run_script "$R" "$STUBS:$PATH" postrm remove
expect_eq "postrm remove: the state and the logs stay" "$before" "$(snapshot)"
run_script "$R" "$STUBS:$PATH" postrm purge
expect_eq "postrm purge: the state and logs go, the admin's file and its directory stay" \
  ". ./etc ./var ./var/lib ./var/lib/cmbridge ./var/lib/cmbridge/admin.keytab ./var/log" "$(snapshot)"
expect_eq "postrm purge: the user stays (no userdel)" "" "$(grep -E 'userdel|deluser' "$CALLS")"

say "lintian"
wait "$lintian_pid"
# The unit's own tags belong to its branch; shown, not judged here.
grep 'cmbridge\.service' "$TMP/lintian.out" | sed 's/^/    (unit) /'
grep -v 'cmbridge\.service' "$TMP/lintian.out" | sort > "$TMP/lintian.tags"
{
  # No LICENSE in the repository yet: nothing to install as the copyright file.
  [ -f "$SRC/LICENSE" ] || echo "E: cmbridge: no-copyright-file"
  # The project's flags, not dpkg-buildflags' (docs/packaging.md).
  echo "I: cmbridge: binary-has-unneeded-section .comment [usr/bin/cmbridge]"
} | sort > "$TMP/lintian.expected"
expect_same "lintian: only the tags docs/packaging.md accounts for" "$TMP/lintian.expected" "$TMP/lintian.tags"

finish
