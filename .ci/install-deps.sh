#!/bin/sh
# Install the Debian packages postern needs to build, test and demo.
# Does nothing when they are all present; needs root otherwise.
set -eu

PACKAGES="gcc make pkg-config bison clang libclang-rt-14-dev \
libtls-dev libevent-dev libmemcached-dev libseccomp-dev libcmocka-dev \
dovecot-imapd dovecot-pop3d memcached haproxy nginx-light libnginx-mod-mail \
curl openssl python3 passwd radicale python3-caldav python3-websockets wrk \
debhelper dpkg-dev prometheus"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing" >&2
	echo "run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "installing:$missing"
# Keep the packages' own services (system dovecot, memcached) from
# starting: tests run private instances on loopback only.
policy=/usr/sbin/policy-rc.d
made_policy=no
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	made_policy=yes
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
[ "$made_policy" = yes ] && rm -f "$policy"
exit 0
