# Shared by the scripts that run a real `imrelay serve` (tests/schemathesis.sh,
# deploy/check-observability.sh): build the binary, pick free ports, write the
# common head of a config (listener, SQLite, one API key, the in-process mock
# with one DingTalk robot). Source it from the repository root.

# Sets BIN to a freshly built debug `imrelay`.
build_imrelay() {
    cargo build -q --locked -p imrelay
    local target_dir
    target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    BIN="$target_dir/debug/imrelay"
    [ -x "$BIN" ] || { echo "FAIL: $BIN was not built" >&2; exit 1; }
}

# Sets PORT and MOCK_PORT to two free local ports.
free_ports() {
    read -r PORT MOCK_PORT < <(python3 -c '
import socket
a = socket.socket(); a.bind(("127.0.0.1", 0))
b = socket.socket(); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
}

# Prints the config's common head for API key $1 (uses PORT and MOCK_PORT).
# The mock's robot is `ci-robot` with secret SECci0123456789abcdef.
config_head() {
    cat <<TOML
[server]
listen = "127.0.0.1:$PORT"
watch = false
[store]
path = "imrelay.db"
[[api_keys]]
name = "ci"
key = "$1"
channels = ["*"]
[mock]
listen = "127.0.0.1:$MOCK_PORT"
[[mock.robots]]
platform = "dingtalk"
token = "ci-robot"
secret = "SECci0123456789abcdef"
TOML
}
