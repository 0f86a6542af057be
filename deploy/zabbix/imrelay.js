// imrelay webhook media type script (Zabbix 6.0+): posts the event's macros
// as JSON to imrelay's `POST /v1/sources/{name}` for a `type = "zabbix"` source.
// Parameters: imrelay_url, imrelay_key, and the event_* macros (see
// media_imrelay.yaml). A 5xx or a network error throws, so Zabbix retries.
var params = JSON.parse(value);

if (!params.imrelay_url) {
    throw 'imrelay: the imrelay_url parameter is empty';
}

// A macro Zabbix could not expand stays as `{MACRO}` (the recovery time of
// a problem); send such values empty.
var payload = {};
Object.keys(params).forEach(function (name) {
    if (name === 'imrelay_url' || name === 'imrelay_key' || name === 'http_proxy') {
        return;
    }
    var v = params[name];
    payload[name] = (typeof v === 'string' && /^(\s*\{[A-Z0-9_.$#]+\})+\s*$/.test(v)) ? '' : v;
});

var req = new HttpRequest();
if (params.http_proxy) {
    req.setProxy(params.http_proxy);
}
req.addHeader('Content-Type: application/json');
if (params.imrelay_key) {
    req.addHeader('Authorization: Bearer ' + params.imrelay_key);
}

Zabbix.log(4, '[imrelay] posting event ' + payload.event_id + ' to ' + params.imrelay_url);
var body = req.post(params.imrelay_url, JSON.stringify(payload));
var status = req.getStatus();

if (status < 200 || status >= 300) {
    Zabbix.log(3, '[imrelay] HTTP ' + status + ': ' + body);
    throw 'imrelay answered HTTP ' + status + ': ' + body;
}

return 'OK';
