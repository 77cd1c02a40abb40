#!/usr/bin/env bash
# The local stack's TLS material, under .work/certs (git-ignored, never in an image):
# a local CA (kept), and a server certificate it signs for localhost / 127.0.0.1, which HAProxy
# serves. Idempotent: an existing certificate is kept while it is valid for 7 more days.
# ROTATE=1 issues a new server certificate (see docs/runbooks/certificate-rotation.md).
set -euo pipefail
DIR=${CERTS_DIR:-.work/certs}
DAYS=${CERT_DAYS:-90}
umask 077
mkdir -p "$DIR"

if ! [ -s "$DIR/ca.crt" ] || ! openssl x509 -checkend $((30 * 86400)) -noout -in "$DIR/ca.crt" >/dev/null; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 365 \
        -subj "/CN=registro local CA" -keyout "$DIR/ca.key" -out "$DIR/ca.crt" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        2>/dev/null
    rm -f "$DIR/server.crt"
    echo "certs: new local CA $DIR/ca.crt"
fi

if [ "${ROTATE:-0}" = 1 ] || ! [ -s "$DIR/server.crt" ] \
        || ! openssl x509 -checkend $((7 * 86400)) -noout -in "$DIR/server.crt" >/dev/null \
        || ! openssl verify -CAfile "$DIR/ca.crt" "$DIR/server.crt" >/dev/null 2>&1; then
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
        -subj "/CN=localhost" -keyout "$DIR/server.key" -out "$DIR/server.csr" 2>/dev/null
    openssl x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -CAcreateserial -days "$DAYS" -sha256 -out "$DIR/server.crt" -extfile <(printf '%s\n' \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature" \
        "basicConstraints=critical,CA:FALSE") 2>/dev/null
    rm -f "$DIR/server.csr"
    # HAProxy takes certificate, chain and key in one file; it runs as a non-root user inside
    # its container, which sees only this file.
    cat "$DIR/server.crt" "$DIR/ca.crt" "$DIR/server.key" >"$DIR/server.pem"
    chmod 644 "$DIR/server.pem"
    echo "certs: new server certificate $DIR/server.crt, serial $(openssl x509 -noout -serial -in "$DIR/server.crt" | cut -d= -f2)"
fi
