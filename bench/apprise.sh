# Sourced by bench/run --apprise: Apprise against imrelay, same N, same mock,
# same run. Installs Apprise from PyPI into its own virtual environment.
venv=${APPRISE_VENV:-$HOME/.cache/imrelay/apprise-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import apprise' 2>/dev/null; then
  python3 -m venv "$venv" || { echo "python3 -m venv failed (apt-get install -y python3-venv)" >&2; exit 1; }
  "$venv/bin/pip" install -q apprise >&2 || { echo "pip install apprise failed" >&2; exit 1; }
fi
ap=$("$venv/bin/python" bench/apprise_send.py "http://127.0.0.1:$MPORT" benchapprise "$APPRISE_N")
ap_sent=$(curl -s "http://127.0.0.1:$MPORT/_mock/counts" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("dingtalk:robot:benchapprise",{}).get("accepted",0))')
start_gw sqlite
im=$(python3 bench/e2e.py deliver "http://127.0.0.1:$GPORT" "$KEY" fast "$APPRISE_N" \
  "http://127.0.0.1:$MPORT" "dingtalk:robot:bench-fast")
stop_gw
ratio=$(python3 -c "import json; a=json.loads('$ap'); i=json.loads('$im'); print(round(i['deliveries_per_s']/a['messages_per_s'], 1))")
out ""
out "### Apprise side by side ($APPRISE_N DingTalk robot messages to the same mock)"
out ""
out "- Apprise (\`bench/apprise_send.py\`: its DingTalk plugin with the endpoint pointed at the mock, throttle 0, sequential \`notify\`): \`$ap\`; the mock accepted $ap_sent"
out "- imrelay (SQLite, submitted in batches of 1,000, timed until the mock accepted all): \`$im\`"
out "- ratio imrelay / Apprise: **${ratio}x**"
