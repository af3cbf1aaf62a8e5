#!/usr/bin/env bash
# The main job: sets up what is missing, builds `kpledger`, generates a 59-participant network
# (genesis and fresh keys), starts its 59 participant nodes and 2 observer nodes as separate
# processes on loopback, and runs a custody flow through them: Botswana issues and seals a
# shipment to the European Union, which confirms receipt; one event is refused with its reason.
# Every API call goes over TLS with a client certificate from the network's CA (docs/security.md):
# each submission as the signing participant's authority, the reads as a reviewer, an observer
# and an authority, so the redacted view is shown beside the full one. It prints the
# certificate's custody history and the network status, then stops the network.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh debug
cargo build --locked --release -p kpledger
kp=./target/release/kpledger
dir="target/demo-network"
if [ -f "$dir/genesis.json" ]; then "$kp" testnet down --dir "$dir" >/dev/null 2>&1 || true; fi
rm -rf "$dir"
"$kp" testnet init --participants 59 --dir "$dir" --base-port "${KP_DEMO_BASE_PORT:-27000}"
trap '"$kp" testnet down --dir "$dir"' EXIT
# The network's CA and the client certificates `testnet init` made: every command below uses them.
export KP_TESTNET="$dir"
echo
echo "== starting 61 nodes (59 participants, 2 observers); logs in $dir/<node>/node.log"
"$kp" testnet up --dir "$dir" | tail -1
api() { sed -n 's/^api = "\(.*\)"$/\1/p' "$dir/$1/node.toml"; }
bw=$(api BW); eu=$(api EU); ae=$(api AE)

year=$(date -u +%Y)
number="BW-$year-000001"
sed -e "s/\"number\": \"[^\"]*\"/\"number\": \"$number\"/" \
    -e "s/\"issued_on\": \"[^\"]*\"/\"issued_on\": \"$(date -u +%F)\"/" \
    -e "s/\"expires_on\": \"[^\"]*\"/\"expires_on\": \"$(date -u -d '+30 days' +%F)\"/" \
    node-config/example-certificate.json > "$dir/certificate.json"

echo
echo "== Botswana's exporting authority issues $number to the EU (signed locally, submitted to BW's node)"
"$kp" cert issue --file "$dir/certificate.json" --key "$dir/BW/exporting.key" --node "$bw" --wait
echo "== Botswana seals the shipment"
"$kp" cert seal "$number" --seal BW-SEAL-7781 --seal BW-SEAL-7782 \
    --port-of-exit "Sir Seretse Khama International Airport" --key "$dir/BW/exporting.key" --node "$bw" --wait
echo "== the United Arab Emirates' importing authority tries to confirm receipt of a shipment addressed to the EU"
if "$kp" cert receive "$number" --parcels 12 --carats 12500.75 --key "$dir/AE/importing.key" --node "$ae"; then
    echo "the ledger accepted an event it must refuse" >&2
    exit 1
fi
echo "== the EU's importing authority confirms receipt (through the EU's node)"
"$kp" cert receive "$number" --parcels 12 --carats 12500.75 --remarks "Antwerp Diamond Office: seals intact" \
    --key "$dir/EU/importing.key" --node "$eu" --wait
echo
echo "== custody history from an observer's node, read by the EU's authority (TLS, client certificate $dir/EU/client.pem)"
observer=$(sed -n 's/^api = "\(.*\)"$/\1/p' "$dir/observers/CSC/node.toml")
for _ in $(seq 1 50); do
    if "$kp" custody "$number" --as EU --node "$observer" --json | grep -q '"state": "received"'; then break; fi
    sleep 0.2
done
"$kp" custody "$number" --as EU --node "$observer"
echo
echo "== the same, read by an observer (Civil Society Coalition): traders and values withheld"
"$kp" custody "$number" --as observer --node "$observer"
echo
echo "== an anonymous caller (no client certificate) may ask for status only"
if "$kp" custody "$number" --as anonymous --node "$observer"; then
    echo "the node answered an unauthenticated caller" >&2
    exit 1
fi
echo
echo "== network status (EU's node)"
"$kp" status --node "$eu"
echo
echo
explorer() { sed -n 's/^explorer = "\(.*\)"$/\1/p' "$dir/$1/node.toml"; }
echo "== the web explorer (read-only, served by every node on loopback; open in a browser while the network runs)"
echo "   BW's node, as Botswana's authority sees it:  http://$(explorer BW)/certificate/$number"
echo "   CSC's observer node, traders and values withheld:  http://$(explorer observers/CSC)/certificate/$number"
echo "   network, statistics, anomalies:  http://$(explorer BW)/  http://$(explorer BW)/statistics  http://$(explorer BW)/anomalies"
if command -v python3 >/dev/null 2>&1; then
    python3 - "http://$(explorer BW)/certificate/$number?format=json" <<'PY'
import json, sys, time, urllib.request
page = None
for _ in range(50):
    try:
        page = json.load(urllib.request.urlopen(sys.argv[1], timeout=10))
        if page.get("state") == "received":
            break
    except Exception:
        pass
    time.sleep(0.2)
if page is None:
    sys.exit("the explorer did not answer: " + sys.argv[1])
print(f"   explorer says: {page['number']} {page['state']}, steps: " + ", ".join(s['kind'] + ' by ' + s['signer'] for s in page['steps']))
PY
fi
if [ -n "${KP_DEMO_KEEP:-}" ]; then
    echo "== KP_DEMO_KEEP is set: the network runs until you press Ctrl-C"
    trap '"$kp" testnet down --dir "$dir"; exit 0' INT
    while true; do sleep 3600; done
fi
echo
echo "== stopping the network"
