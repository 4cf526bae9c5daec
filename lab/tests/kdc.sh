#!/usr/bin/env bash
# A private MIT Kerberos KDC for the lab's [site] auth = negotiate (docs/lab.md
# "kdc.sh"). Not part of the lab binary: the lab only accepts tickets.
#
#   kdc.sh start DIR [REALM]   creates DIR (0700), a realm (default CMBRIDGE.LAB)
#                              with HTTP/localhost and svc-cmbridge (random keys),
#                              exports DIR/http.keytab and DIR/client.keytab,
#                              starts krb5kdc on a free 127.0.0.1 port and prints
#                              the environment a caller needs, one NAME=value a line:
#                                KRB5_CONFIG=DIR/krb5.conf
#                                KRB5_KDC_PROFILE=DIR/kdc.conf
#                                KRB5_KTNAME=DIR/http.keytab
#                                KRB5_CLIENT_KTNAME=DIR/client.keytab
#                                KRB5CCNAME=FILE:DIR/ccache
#                                KRB5RCACHETYPE=none
#                                CMB_KDC_REALM=REALM
#                                CMB_KDC_PORT=PORT
#                                CMB_KDC_CLIENT=svc-cmbridge@REALM
#                                CMB_KDC_SERVICE=HTTP/localhost@REALM
#   kdc.sh stop DIR            stops that KDC (pid in DIR/kdc.pid); DIR stays.
#
# Exit status: 0 ok, 1 failure (message on stderr), 2 usage, 77 when the
# krb5 tools are missing (Debian: krb5-kdc krb5-admin-server krb5-user).
set -euo pipefail

usage() { echo "usage: kdc.sh start DIR [REALM] | kdc.sh stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
CMD=$1 DIR=$2 REALM=${3:-CMBRIDGE.LAB}
PATH=$PATH:/usr/sbin:/sbin

case "$CMD" in
stop)
	[ -f "$DIR/kdc.pid" ] || { echo "kdc.sh: $DIR: not running" >&2; exit 0; }
	pid=$(cat "$DIR/kdc.pid")
	if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" == krb5kdc ]; then
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -f "$DIR/kdc.pid"
	exit 0 ;;
start) ;;
*) usage ;;
esac

for t in krb5kdc kdb5_util kadmin.local; do
	command -v "$t" >/dev/null || { echo "kdc.sh: $t is not installed (Debian: krb5-kdc krb5-admin-server krb5-user)" >&2; exit 77; }
done
mkdir -p "$DIR"
chmod 700 "$DIR"
DIR=$(cd "$DIR" && pwd)
[ ! -f "$DIR/kdc.pid" ] || { echo "kdc.sh: $DIR: a KDC is already running (kdc.sh stop $DIR)" >&2; exit 1; }

# a free loopback port (bound and released; the KDC takes it right after)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	shuf -i 20000-60000 -n 1)

cat >"$DIR/kdc.conf" <<EOF
[kdcdefaults]
	kdc_listen = 127.0.0.1:$PORT
	kdc_tcp_listen = 127.0.0.1:$PORT
[realms]
	$REALM = {
		database_name = $DIR/principal
		key_stash_file = $DIR/stash
		acl_file = $DIR/kadm5.acl
		max_life = 10h 0m 0s
		max_renewable_life = 1d 0h 0m 0s
		supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
	}
[logging]
	kdc = FILE:$DIR/kdc.log
	default = FILE:$DIR/kdc.log
EOF
cat >"$DIR/krb5.conf" <<EOF
[libdefaults]
	default_realm = $REALM
	dns_lookup_kdc = false
	dns_lookup_realm = false
	dns_canonicalize_hostname = false
	rdns = false
	udp_preference_limit = 1
	default_ccache_name = FILE:$DIR/ccache
[realms]
	$REALM = {
		kdc = 127.0.0.1:$PORT
	}
[domain_realm]
	localhost = $REALM
	127.0.0.1 = $REALM
EOF
: >"$DIR/kadm5.acl"
export KRB5_CONFIG="$DIR/krb5.conf" KRB5_KDC_PROFILE="$DIR/kdc.conf"

if [ ! -f "$DIR/principal" ]; then
	MP=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
	kdb5_util -r "$REALM" create -s -P "$MP" >"$DIR/setup.log" 2>&1 || { cat "$DIR/setup.log" >&2; exit 1; }
	rm -f "$DIR/http.keytab" "$DIR/client.keytab"
	{
		kadmin.local -r "$REALM" -q "addprinc -randkey HTTP/localhost@$REALM"
		kadmin.local -r "$REALM" -q "addprinc -randkey svc-cmbridge@$REALM"
		kadmin.local -r "$REALM" -q "ktadd -k $DIR/http.keytab HTTP/localhost@$REALM"
		kadmin.local -r "$REALM" -q "ktadd -k $DIR/client.keytab svc-cmbridge@$REALM"
	} >>"$DIR/setup.log" 2>&1 || { cat "$DIR/setup.log" >&2; exit 1; }
	chmod 600 "$DIR/http.keytab" "$DIR/client.keytab"
fi

krb5kdc -r "$REALM" -P "$DIR/kdc.pid" >>"$DIR/kdc.log" 2>&1 || { tail -n 5 "$DIR/kdc.log" >&2; exit 1; }
for _ in $(seq 50); do [ -s "$DIR/kdc.pid" ] && break; sleep 0.1; done
[ -s "$DIR/kdc.pid" ] || { echo "kdc.sh: krb5kdc did not start (see $DIR/kdc.log)" >&2; exit 1; }

cat <<EOF
KRB5_CONFIG=$DIR/krb5.conf
KRB5_KDC_PROFILE=$DIR/kdc.conf
KRB5_KTNAME=$DIR/http.keytab
KRB5_CLIENT_KTNAME=$DIR/client.keytab
KRB5CCNAME=FILE:$DIR/ccache
KRB5RCACHETYPE=none
CMB_KDC_REALM=$REALM
CMB_KDC_PORT=$PORT
CMB_KDC_CLIENT=svc-cmbridge@$REALM
CMB_KDC_SERVICE=HTTP/localhost@$REALM
EOF
