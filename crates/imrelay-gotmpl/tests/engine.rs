//! Behaviour of the engine that the Go corpus does not pin down on its own:
//! parse errors, exec errors, options, and each function's edge cases.

use imrelay_gotmpl::{alertmanager, ErrorKind, Templates, TimeZone, Value};
use serde_json::json;

fn pwd(src: &str, data: serde_json::Value) -> Result<String, String> {
    let mut t = Templates::pwd();
    t.parse("t", src).map_err(|e| e.to_string())?;
    let d = alertmanager(&data, &TimeZone::UTC)?;
    t.render("t", &d).map_err(|e| e.to_string())
}

fn pa(src: &str, data: serde_json::Value) -> Result<String, String> {
    let mut t = Templates::prometheus_alert();
    t.parse("t", src).map_err(|e| e.to_string())?;
    t.render("t", &Value::from_json(&data))
        .map_err(|e| e.to_string())
}

fn ok(src: &str) -> String {
    pa(src, json!({})).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn parse_err(src: &str) -> String {
    let mut t = Templates::pwd();
    let e = t.parse("pwd-default", src).expect_err(src);
    assert_eq!(e.kind, ErrorKind::Parse);
    e.to_string()
}

fn sample() -> serde_json::Value {
    json!({
        "receiver": "ops", "status": "firing", "externalURL": "http://am:9093",
        "groupLabels": {"alertname": "Down"},
        "commonLabels": {"alertname": "Down", "job": "node", "SortedPairs": "shadowed"},
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Down", "zone": "b", "instance": "h1"}, "startsAt": "2024-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z"},
            {"status": "resolved", "labels": {"alertname": "Down", "instance": "h2"}, "startsAt": "2024-05-01T09:00:00+08:00", "endsAt": "2024-05-01T11:30:00.25Z"}
        ]
    })
}

#[test]
fn parse_errors_name_template_line_column_and_construct() {
    assert_eq!(
        parse_err("a\nb {{ foo . }}"),
        r#"template "pwd-default" line 2, column 6: function "foo" not defined"#
    );
    assert_eq!(
        parse_err("{{ $x }}"),
        r#"template "pwd-default" line 1, column 4: undefined variable "$x""#
    );
    assert!(parse_err("x\n\n{{ end }}").starts_with(r#"template "pwd-default" line 3"#));
    assert!(parse_err("{{ end }}").ends_with("unexpected {{end}}"));
    assert!(parse_err("{{ else }}").ends_with("unexpected {{else}}"));
    assert!(parse_err("{{ if . }}x").ends_with("unexpected EOF"));
    assert!(parse_err("{{ .A ").contains("unclosed action"));
    assert!(parse_err(r#"{{ "abc }}"#).contains("unterminated quoted string"));
    assert!(parse_err("{{ break }}").contains("{{break}} outside {{range}}"));
    assert!(parse_err("{{ .A | 3 }}").contains("non executable command in pipeline stage 2"));
    assert!(parse_err("{{ }}").contains("missing value for command"));
    assert!(parse_err("{{ 1x }}").contains("bad number syntax"));
    // Comments hug their delimiters, as in Go.
    assert!(parse_err("a{{ /* c */ }}b").contains("unrecognized character in action: '/'"));
    assert!(parse_err("{{/*c*/ }}").contains("comment ends before closing delimiter"));
    assert!(parse_err("{{/* c").contains("unclosed comment"));
    assert!(
        parse_err(r#"{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}"#)
            .contains(r#"multiple definition of template "a""#)
    );
    assert!(parse_err("{{ if 1 }}{{ define \"a\" }}{{ end }}{{ end }}")
        .contains("only allowed at the top level"));
    // Errors inside a define name the define.
    assert!(parse_err("{{ define \"inner\" }}\n{{ nope }}{{ end }}")
        .starts_with(r#"template "inner" line 2"#));
    // `call` (function values) is not supported: reported like an unknown function.
    assert!(parse_err("{{ call .F }}").contains(r#"function "call" not defined"#));
}

#[test]
fn undefined_template_references_are_found_before_rendering() {
    let mut t = Templates::pwd();
    t.parse("t", r#"{{ if . }}{{ template "nope" . }}{{ end }}"#)
        .unwrap();
    let e = t.check_references().unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"template "t" line 1, column 14: no such template "nope""#
    );
    t.parse("more", r#"{{ define "nope" }}ok{{ end }}"#)
        .unwrap();
    t.check_references().unwrap();
    assert_eq!(t.render("t", &Value::Bool(true)).unwrap(), "ok");
}

#[test]
fn later_definitions_replace_earlier_ones_unless_empty() {
    let mut t = Templates::pwd();
    t.parse("a", r#"{{ define "x" }}one{{ end }}{{ template "x" }}"#)
        .unwrap();
    t.parse("b", r#"{{ define "x" }}two{{ end }}"#).unwrap();
    assert_eq!(t.render("a", &Value::Nil).unwrap(), "two");
    t.parse("c", r#"{{ define "x" }}  {{ end }}"#).unwrap();
    assert_eq!(t.render("a", &Value::Nil).unwrap(), "two");
}

#[test]
fn missingkey_zero_applies_to_pwd_string_maps_only() {
    let d = sample();
    assert_eq!(
        pwd(
            "[{{ .CommonLabels.nope }}][{{ index .CommonLabels \"nope\" }}]",
            d.clone()
        )
        .unwrap(),
        "[][]"
    );
    assert_eq!(
        pa(
            "[{{ .commonLabels.nope }}][{{ index .commonLabels \"nope\" }}][{{ .a.b.c }}]",
            d
        )
        .unwrap(),
        "[<no value>][<no value>][<no value>]"
    );
}

#[test]
fn methods_shadow_map_keys_as_in_go() {
    let out = pwd(
        "{{ .CommonLabels.SortedPairs.Names }} {{ index .CommonLabels \"SortedPairs\" }}",
        sample(),
    )
    .unwrap();
    assert_eq!(out, "[alertname SortedPairs job] shadowed");
}

#[test]
fn alertmanager_data_model() {
    let src = "{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }} {{ range .Alerts }}{{ .Labels.SortedPairs }}|{{ .StartsAt }}|{{ .EndsAt }};{{ end }}";
    assert_eq!(
        pwd(src, sample()).unwrap(),
        "1/1 [{alertname Down} {instance h1} {zone b}]|2024-05-01 10:00:00 +0000 UTC|0001-01-01 00:00:00 +0000 UTC;\
         [{alertname Down} {instance h2}]|2024-05-01 09:00:00 +0800 +0800|2024-05-01 11:30:00.25 +0000 UTC;"
    );
    // Firing returns []Alert, which has no Firing method.
    assert!(pwd("{{ .Alerts.Firing.Firing }}", sample())
        .unwrap_err()
        .contains("can't evaluate field Firing"));
    assert!(pwd("{{ .Nope }}", sample())
        .unwrap_err()
        .contains("can't evaluate field Nope in type template.Data"));
    assert_eq!(
        pwd(
            "{{ (.CommonLabels.Remove .GroupLabels.Names).Values }}",
            sample()
        )
        .unwrap(),
        "[shadowed node]"
    );
    assert!(alertmanager(
        &json!({"alerts": [{"startsAt": "yesterday"}]}),
        &TimeZone::UTC
    )
    .is_err());
}

#[test]
fn times_follow_go_local_and_layouts() {
    let d = alertmanager(&sample(), &TimeZone::get("Asia/Shanghai").unwrap()).unwrap();
    let mut t = Templates::pwd().with_local(TimeZone::get("Asia/Shanghai").unwrap());
    t.parse(
        "t",
        r#"{{ range .Alerts }}{{ .StartsAt }}|{{ .StartsAt.Local.Format "Jan _2 3:04:05.000PM MST Z07:00" }}|{{ .StartsAt.UTC.Unix }}|{{ .StartsAt.Year }}-{{ .StartsAt.Day }}T{{ .StartsAt.Hour }}:{{ .StartsAt.Minute }}:{{ .StartsAt.Second }};{{ end }}"#,
    )
    .unwrap();
    assert_eq!(
        t.render("t", &d).unwrap(),
        "2024-05-01 10:00:00 +0000 UTC|May  1 6:00:00.000PM CST +08:00|1714557600|2024-1T10:0:0;\
         2024-05-01 09:00:00 +0800 CST|May  1 9:00:00.000AM CST +08:00|1714525200|2024-1T9:0:0;"
    );
}

#[test]
fn exec_errors_name_the_template_and_line() {
    let mut t = Templates::pwd();
    t.parse("t", "ok\n{{ template \"inner\" 5 }}").unwrap();
    t.parse("u", "{{ define \"inner\" }}\n\n{{ index . 1 }}{{ end }}")
        .unwrap();
    let e = t.render("t", &Value::Nil).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Exec);
    assert_eq!(
        e.to_string(),
        r#"template "inner" line 3, column 4: error calling index: can't index item of type int"#
    );
    let mut r = Templates::pwd();
    r.parse(
        "loop",
        r#"{{ define "l" }}{{ template "l" . }}{{ end }}{{ template "l" . }}"#,
    )
    .unwrap();
    assert!(r
        .render("loop", &Value::Nil)
        .unwrap_err()
        .to_string()
        .contains("exceeded maximum template depth"));
    assert!(r.render("nope", &Value::Nil).is_err());
}

#[test]
fn control_flow_and_variables() {
    assert_eq!(ok("{{ range $i, $e := stringSlice \"a\" \"b\" \"c\" }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ $e }}{{ end }}"), "0a2c");
    assert_eq!(
        ok("{{ range stringSlice \"a\" \"b\" }}{{ . }}{{ break }}{{ end }}"),
        "a"
    );
    assert_eq!(
        ok("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}"),
        "21"
    );
    assert_eq!(
        ok("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"),
        "2"
    );
    assert_eq!(ok("{{ with $v := \"w\" }}{{ $v }}{{ . }}{{ end }}{{ with \"\" }}no{{ else }}else{{ end }}"), "wwelse");
    assert_eq!(
        ok("{{ if false }}a{{ else if 0 }}b{{ else if \"x\" }}c{{ else }}d{{ end }}"),
        "c"
    );
    assert_eq!(ok("a  {{- /* comment */ -}}  b"), "ab");
    assert_eq!(ok("{{ block \"b\" 3 }}[{{ . }}]{{ end }}"), "[3]");
    // Declared in a range, gone after it.
    let mut t = Templates::pwd();
    assert!(t
        .parse("t", "{{ range $e := . }}{{ end }}{{ $e }}")
        .is_err());
    // Range over a map visits keys in sorted order; over nil runs else.
    assert_eq!(pa("{{ range $k, $v := .m }}{{ $k }}={{ $v }},{{ end }}{{ range .nope }}x{{ else }}none{{ end }}", json!({"m": {"b": 2, "a": 1, "B": 3}})).unwrap(), "B=3,a=1,b=2,none");
    assert!(pa("{{ range .s }}{{ end }}", json!({"s": "str"}))
        .unwrap_err()
        .contains("range can't iterate over str"));
}

#[test]
fn and_or_short_circuit_and_return_operands() {
    assert_eq!(ok("{{ or 0 \"\" }}|{{ or 0 \"x\" (index .nope 9) }}|{{ and 1 0 (index .nope 9) }}|{{ and 1 2 }}"), "|x|0|2");
    assert!(pa("{{ and 1 (index .nope 9) }}", json!({})).is_err());
    assert_eq!(ok("{{ 0 | and 1 }}|{{ 5 | or 0 }}"), "0|5");
}

#[test]
fn comparisons_follow_go_types() {
    assert_eq!(ok("{{ eq 1 2 3 1 }} {{ eq \"a\" \"b\" }} {{ ne 1 2 }} {{ lt \"a\" \"b\" }} {{ le 2 2 }} {{ gt 1.5 0.5 }} {{ ge 1 2 }}"), "true false true true true true false");
    assert_eq!(
        pa("{{ eq .nope \"x\" }} {{ eq .nope .nope2 }}", json!({})).unwrap(),
        "false true"
    );
    assert!(ok_err("{{ eq 1 1.0 }}").contains("incompatible types for comparison"));
    assert!(ok_err("{{ lt 1 \"a\" }}").contains("incompatible types for comparison"));
    assert!(ok_err("{{ eq (stringSlice) 1 }}").contains("invalid type for comparison"));
    assert!(ok_err("{{ eq 1 }}").contains("missing argument for comparison"));
}

fn ok_err(src: &str) -> String {
    pa(src, json!({})).expect_err(src)
}

#[test]
fn builtin_functions() {
    assert_eq!(ok("{{ len \"héllo\" }} {{ index \"abc\" 1 }} {{ slice \"abcdef\" 1 3 }} {{ slice \"abc\" }} {{ index (stringSlice \"x\" \"y\") 1 }}"), "6 98 bc abc y");
    assert!(ok_err("{{ index (stringSlice \"x\") 3 }}").contains("index out of range: 3"));
    assert!(ok_err("{{ slice \"abc\" 2 1 }}").contains("invalid slice index: 2 > 1"));
    assert!(ok_err("{{ len 3 }}").contains("len of type int"));
    assert_eq!(ok("{{ not 0 }} {{ not \"x\" }}"), "true false");
    assert_eq!(
        ok("{{ print 1 2 \"a\" \"b\" 3 nil }}|{{ println \"a\" 1 }}|"),
        "1 2ab3 <nil>|a 1\n|"
    );
    assert_eq!(ok("{{ printf \"%s=%d %q %v %5.1f|%-4s|%x\" \"a\" 7 \"é\\n\" (stringSlice \"p\" \"q\") 3.14159 \"ab\" 255 }}"), "a=7 \"é\\n\" [p q]   3.1|ab  |ff");
    assert_eq!(
        ok("{{ printf \"%d %d\" 1 }} {{ printf \"%d\" 1 \"x\" }} {{ printf \"%d\" \"x\" }}"),
        "1 %!d(MISSING) 1%!(EXTRA string=x) %!d(string=x)"
    );
    assert_eq!(
        ok("{{ html \"<a href='x'>&\\\"</a>\" }} {{ html .nope }}"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt; &lt;no value&gt;"
    );
    assert_eq!(
        ok("{{ js \"a'b\\\"c<d>&=\\\\ \\t é\" }}"),
        "a\\'b\\\"c\\u003Cd\\u003E\\u0026\\u003D\\\\ \\u0009 é"
    );
    assert_eq!(ok("{{ urlquery \"a b&c/é\" }}"), "a+b%26c%2F%C3%A9");
    assert_eq!(
        ok("{{ 1.5e6 }} {{ 123456.0 }} {{ 0.00001 }} {{ 0x10 }} {{ 'x' }}"),
        "1.5e+06 123456 1e-05 16 120"
    );
}

#[test]
fn pwd_functions() {
    let d = sample();
    let f = |src: &str| pwd(src, d.clone()).unwrap_or_else(|e| panic!("{src}: {e}"));
    assert_eq!(f("{{ toUpper \"straße\" }} {{ toLower \"ÀB\" }} {{ title \"hello wORLD o'neil\" }} {{ upper \"x\" }} {{ lower \"Y\" }}"), "STRAßE àb Hello WORLD O'Neil X y");
    assert_eq!(f("{{ markdown \"a_b*c`d\" }}"), "a\\_b\\*c\\`d");
    assert_eq!(
        f("{{ join \", \" .CommonLabels.Values }} {{ join \"-\" (stringSlice \"a\" \"b\") }}"),
        "Down, shadowed, node a-b"
    );
    assert_eq!(
        f("{{ match \"^D\" .Status }} {{ match `\\d` \"٣\" }} {{ match `\\w+` \"é\" }}"),
        "false false false"
    );
    assert!(pwd("{{ match \"(\" \"x\" }}", d.clone())
        .unwrap_err()
        .contains("error parsing regexp"));
    assert_eq!(
        f("{{ reReplaceAll `(\\w+)@(\\w+)` \"$2 at ${1}x $1x\" \"joe@host\" }}"),
        "host at joex "
    );
    assert_eq!(
        f("{{ safeHtml \"<b>\" }} {{ stringSlice \"a\" \"b\" }} {{ len (stringSlice) }}"),
        "<b> [a b] 0"
    );
    assert_eq!(f("{{ urlUnescape \"a%20b+c\" }}"), "a b c");
    assert!(pwd("{{ urlUnescape \"%zz\" }}", d.clone())
        .unwrap_err()
        .contains("invalid URL escape \"%zz\""));
    assert_eq!(
        f("{{ (index .Alerts 0).StartsAt | tz \"Asia/Tokyo\" }}"),
        "2024-05-01 19:00:00 +0900 JST"
    );
    assert!(pwd(
        "{{ tz \"Mars/Base\" (index .Alerts 0).StartsAt }}",
        d.clone()
    )
    .unwrap_err()
    .contains("unknown time zone Mars/Base"));
    assert_eq!(
        f("{{ date \"2006-01-02 15:04\" (index .Alerts 0).StartsAt }} {{ date \"15:04:05\" 0 }}"),
        "2024-05-01 10:00 00:00:00"
    );
    assert_eq!(f("{{ trimSpace \" a \" }}|{{ trim \"\\tb\\n\" }}|{{ trimPrefix \"a\" \"abc\" }}|{{ trimSuffix \"c\" \"abc\" }}"), "a|b|bc|ab");
    assert_eq!(f("{{ contains \"b\" \"abc\" }} {{ hasPrefix \"a\" \"abc\" }} {{ hasSuffix \"a\" \"abc\" }} {{ replace \"a\" \"o\" \"banana\" }} {{ replace \"\" \"-\" \"ab\" }}"), "true true false bonono -a-b-");
    assert_eq!(f("{{ default \"none\" .CommonLabels.nope }} {{ .CommonLabels.job | default \"none\" }} {{ default 1 0 }}"), "none node 1");
    assert!(pwd("{{ toUpper 3 }}", d.clone())
        .unwrap_err()
        .contains("expected string; got int"));
    assert!(pwd("{{ toUpper }}", d)
        .unwrap_err()
        .contains("wrong number of args for toUpper: want 1 got 0"));
}

#[test]
fn prometheus_alert_functions() {
    assert_eq!(ok("{{ GetCSTtime \"2024-05-01T20:00:00Z\" }}|{{ GetCSTtime \"2024-05-01 20:00:00\" }}|{{ GetCSTtime \"bad\" }}|"), "2024-05-02 04:00:00|2024-05-02 04:00:00||");
    assert_eq!(ok("{{ TimeFormat \"2024-05-01T20:00:00.5Z\" \"2006/01/02 15:04:05.0\" }}|{{ TimeFormat \"2024-05-01T20:00:00+08:00\" \"15:04 MST\" }}"), "2024/05/01 20:00:00.5|20:00 UTC");
    assert_eq!(
        ok("{{ TimeFormat \"2024-05-01T20:00:00-05:00\" \"x\" }}"),
        r#"parsing time "2024-05-01T20:00:00-05:00" as "2006-01-02T15:04:05.999999999+08:00": cannot parse "-05:00" as "+08:00""#
    );
    assert_eq!(ok("{{ GetTime \"1714557600\" }} {{ GetTime \"1714557600999\" \"15:04\" }} [{{ GetTime 5 }}]"), "2024-05-01T10:00:00 10:00 []");
    assert_eq!(
        pa("{{ GetTime .n \"2006\" }}", json!({"n": 1714557600.7})).unwrap(),
        "2024"
    );
    assert_eq!(
        ok("{{ GetTimeDuration \"2024-05-01T10:00:00Z\" \"2024-05-03T13:00:00Z\" }} {{ GetTimeDuration \"2024-05-01T10:00:00Z\" \"2024-05-01T10:00:09Z\" }} {{ GetTimeDuration \"\" \"x\" }} {{ GetTimeDuration \"2024-05-01T10:00:00Z\" \"0001-01-01T00:00:00Z\" }}"),
        "2d3h 9s N/A -47m-16s"
    );
    assert!(
        ok_err("{{ GetTimeDuration \"short\" \"2024-05-01T10:00:00Z\" }}")
            .contains("slice bounds out of range")
    );
    assert_eq!(
        ok("{{ SplitString \"abcdef\" 1 -2 }} {{ SplitString \"abc\" 0 2 }}"),
        "bcd ab"
    );
    assert!(ok_err("{{ SplitString \"abc\" 0 9 }}").contains("slice bounds out of range"));
    // PA's join takes a []string only; JSON arrays are []interface{}.
    assert!(pa("{{ join \",\" .l }}", json!({"l": ["a"]}))
        .unwrap_err()
        .contains("expected []string; got []interface {}"));
    assert_eq!(ok("{{ join \",\" (stringSlice \"a\" \"b\") }}"), "a,b");
}
