#!/usr/bin/env bash
# Certificates for TLS distribution between the compose file's services (issue 13): a CA of
# their own, and for each service a key and a certificate naming its host (the host part of
# its node name, which a peer that dials it checks, as OTP's inet_tls_dist does), good for
# both ends of a connection. Also ssl_dist.conf, the -ssl_dist_optfile of the Elixir VM.
#
#   compose/make-certs.sh [DIR]     # default compose/certs; the services mount it at /certs
#
# Throwaway certificates for a test run or a try-out, made fresh each time: the keys are
# readable by all (the node's container runs as its own user, uid 10001, and reads them
# from a bind mount owned by whoever ran this). Use certificates of your own elsewhere.
set -euo pipefail

DIR=${1:-$(dirname "$0")/certs}
HOSTS=(rustelixir_a rustelixir_b elixir)
DAYS=30

mkdir -p "$DIR"
cd "$DIR"
rm -f ./*.pem ./*.key ./*.csr ./*.srl ssl_dist.conf

# EC P-256 keys: both rustls and OTP 25's ssl take them, and they are made at once.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.pem -days "$DAYS" -subj "/CN=rustelixir compose CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

for host in "${HOSTS[@]}"; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$host.key" -out "$host.csr" -subj "/CN=$host" 2>/dev/null
    openssl x509 -req -in "$host.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "$host.pem" -days "$DAYS" -extfile <(printf '%s\n' \
            "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature" \
            "extendedKeyUsage=serverAuth,clientAuth" \
            "subjectAltName=DNS:$host") 2>/dev/null
    rm "$host.csr"
done
rm -f ca.key ca.srl
chmod 0644 ./*.key ./*.pem

# The Elixir VM's side, in the containers' paths: its certificate for both ends, peers
# verified against the CA, and a peer without a certificate refused.
cat > ssl_dist.conf <<'EOF'
[{server, [{certfile, "/certs/elixir.pem"}, {keyfile, "/certs/elixir.key"},
           {cacertfile, "/certs/ca.pem"}, {verify, verify_peer},
           {fail_if_no_peer_cert, true}, {secure_renegotiate, true}]},
 {client, [{certfile, "/certs/elixir.pem"}, {keyfile, "/certs/elixir.key"},
           {cacertfile, "/certs/ca.pem"}, {verify, verify_peer},
           {secure_renegotiate, true}]}].
EOF
chmod 0644 ssl_dist.conf
