//! The Rust twin of tests/gotemplate/render.go, for comparing by hand:
//! `cargo run -p imrelay-gotmpl --example render -- pwd|pa TEMPLATE DATA [NAME]`.
//! Go's `time.Local` comes from `TZ` (default UTC).

use imrelay_gotmpl::{alertmanager, Templates, TimeZone, Value};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: render pwd|pa TEMPLATE_FILE DATA_FILE [TEMPLATE_NAME]");
        std::process::exit(2);
    }
    let fail = |e: String| -> ! {
        eprintln!("render: {e}");
        std::process::exit(1)
    };
    let local = match std::env::var("TZ") {
        Ok(tz) if !tz.is_empty() => TimeZone::get(&tz).unwrap_or_else(|e| fail(e.to_string())),
        _ => TimeZone::UTC,
    };
    let src = std::fs::read_to_string(&args[1]).unwrap_or_else(|e| fail(e.to_string()));
    let raw = std::fs::read_to_string(&args[2]).unwrap_or_else(|e| fail(e.to_string()));
    let json: serde_json::Value =
        serde_json::from_str(&raw).unwrap_or_else(|e| fail(e.to_string()));
    let (mut t, data) = match args[0].as_str() {
        "pwd" => (
            Templates::pwd().with_local(local.clone()),
            alertmanager(&json, &local).unwrap_or_else(|e| fail(e)),
        ),
        "pa" => (
            Templates::prometheus_alert().with_local(local),
            Value::from_json(&json),
        ),
        m => fail(format!("unknown mode {m:?}")),
    };
    t.parse("root", &src)
        .unwrap_or_else(|e| fail(e.to_string()));
    let name = args.get(3).map_or("root", String::as_str);
    let out = t
        .render(name, &data)
        .unwrap_or_else(|e| fail(e.to_string()));
    print!("{out}");
}
