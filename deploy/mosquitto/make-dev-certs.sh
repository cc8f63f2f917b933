#!/bin/sh
# A demo CA and a server certificate for the compose broker's TLS listener (port 8883), written to
# deploy/mosquitto/certs/. For a demo or a test bench only: use the city's own PKI for anything real.
#
#   deploy/mosquitto/make-dev-certs.sh [HOSTNAME ...]     (default: localhost mosquitto)
#
# Devices verify the broker with certs/ca.crt. Existing files are kept; delete the folder to start over.
set -eu
cd "$(dirname "$0")"
mkdir -p certs
cd certs
[ $# -gt 0 ] || set -- localhost mosquitto
if [ -f ca.crt ] && [ -f server.crt ] && [ -f server.key ]; then
    echo "certs/ already holds ca.crt, server.crt and server.key; delete them to make new ones"
    exit 0
fi

san="IP:127.0.0.1"
for name in "$@"; do san="$san,DNS:$name"; done

# EC P-256: quick to make, and every MQTT TLS stack that does TLS 1.2 accepts it.
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 825 \
    -subj "/CN=CityWatch demo CA" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
    -subj "/CN=$1" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$san" > server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
    -extfile server.ext -out server.crt 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 600 ca.key
chmod 644 ca.crt server.crt
# Mosquitto 2.0 opens the key after dropping to its own user (uid 1883 in the eclipse-mosquitto image;
# seen on 2.0.11: "Unable to load server key file ... Permission denied"), so that user must read it.
if [ "$(id -u)" = 0 ]; then
    chown 1883:1883 server.key
    chmod 600 server.key
else
    chmod 644 server.key
    echo "note: server.key is world-readable (demo only); as root it would be given to uid 1883, mode 0600"
fi
echo "wrote $(pwd)/ca.crt, server.crt, server.key (SAN $san)"
