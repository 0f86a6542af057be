//! Tencent Cloud Observability Platform (云监控) alarm callbacks: a JSON POST
//! per alarm and recovery, `alarmStatus` "1" (alarm) or "0" (recovered). The
//! policy and the object's dimensions are the thread, so the recovery updates
//! the alarm's card. Tencent's callbacks carry no authentication of their
//! own: give the URL a `?key=`.

use serde_json::Value;

use super::{key_of, scalar_text, text_at, Event, Parsed, PayloadError, Status};

pub fn parse(body: &Value) -> Result<Parsed, PayloadError> {
    let status = status_of(body)?;
    let policy_id = text_at(body, "/alarmPolicyInfo/policyId")
        .ok_or_else(|| PayloadError::missing("alarmPolicyInfo.policyId"))?;
    let policy = text_at(body, "/alarmPolicyInfo/policyName").unwrap_or_else(|| policy_id.clone());
    let kind = text_at(body, "/alarmType").unwrap_or_else(|| "metric".into());
    let dims: Vec<(String, String)> = match body.pointer("/alarmObjInfo/dimensions") {
        Some(Value::Object(d)) => d
            .iter()
            .filter_map(|(k, v)| scalar_text(v).map(|v| (k.clone(), v)))
            .collect(),
        _ => Vec::new(),
    };
    let object = dims
        .iter()
        .find(|(k, _)| {
            matches!(
                k.as_str(),
                "unInstanceId" | "objName" | "objId" | "InstanceId"
            )
        })
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let region = text_at(body, "/alarmObjInfo/region").unwrap_or_default();
    let text = details(body, &kind, &object, &region);
    let title = if object.is_empty() {
        policy
    } else {
        format!("{policy} · {object}")
    };
    let mut e = Event::new(status, title, text).with_severity("warning");
    e.label("policy_id", policy_id.clone());
    e.label(
        "namespace",
        text_at(body, "/alarmObjInfo/namespace").unwrap_or_default(),
    );
    e.label("region", region);
    e.label("alarm_type", kind);
    e.label("instance", object);
    let dims_key = dims
        .iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(";");
    e.thread = Some(key_of(&[("policy", &policy_id), ("object", &dims_key)]));
    Ok(Parsed::Events(vec![e]))
}

fn status_of(body: &Value) -> Result<Status, PayloadError> {
    match text_at(body, "/alarmStatus").as_deref() {
        Some("1") => Ok(Status::Firing),
        Some("0") => Ok(Status::Resolved),
        Some(other) => Err(PayloadError::new(
            "alarmStatus",
            format!("`{other}` is neither 1 (alarm) nor 0 (recovered)"),
        )),
        None => Err(PayloadError::missing("alarmStatus")),
    }
}

/// The alarm's facts as markdown lines, the empty ones left out.
fn details(body: &Value, kind: &str, object: &str, region: &str) -> String {
    let c =
        |k: &str| text_at(body, &format!("/alarmPolicyInfo/conditions/{k}")).unwrap_or_default();
    let what = if kind == "event" {
        text_at(body, "/alarmPolicyInfo/conditions/eventShowName")
            .or_else(|| text_at(body, "/alarmPolicyInfo/conditions/eventName"))
            .unwrap_or_default()
    } else {
        let metric = Some(c("metricShowName"))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| c("metricName"));
        format!(
            "{metric} {} {}{}",
            c("calcType"),
            c("calcValue"),
            c("calcUnit")
        )
    };
    let service = text_at(body, "/alarmPolicyInfo/policyTypeCName")
        .or_else(|| text_at(body, "/alarmObjInfo/namespace"))
        .unwrap_or_default();
    let current = if kind == "event" {
        String::new()
    } else {
        format!("{}{}", c("currentValue"), c("unit"))
    };
    let duration = text_at(body, "/durationTime")
        .map(|d| format!("{d}s"))
        .unwrap_or_default();
    let recovered = text_at(body, "/recoverTime")
        .filter(|t| t != "0")
        .unwrap_or_default();
    let since = text_at(body, "/firstOccurTime").unwrap_or_default();
    let mut text = String::new();
    for (label, value) in [
        ("Object", object),
        ("Service", &service),
        ("Region", region),
        ("Condition", what.trim()),
        ("Current", &current),
        ("Since", &since),
        ("Duration", &duration),
        ("Recovered", &recovered),
    ] {
        if !value.trim().is_empty() {
            text.push_str(&format!("**{label}:** {value}\n\n"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alarm(status: &str) -> Value {
        json!({"sessionId": "xxxxxxxx", "alarmStatus": status, "alarmType": "metric",
            "alarmObjInfo": {"region": "gz", "namespace": "qce/cvm", "appId": "1250000000", "uin": "100000000001",
                "dimensions": {"unInstanceId": "ins-o9p3rg3m", "objId": "xxxxxxxxxxxx"}},
            "alarmPolicyInfo": {"policyId": "policy-n4exeh88", "policyType": "cvm_device", "policyName": "CPU high",
                "policyTypeCName": "云服务器-基础监控",
                "conditions": {"metricName": "cpu_usage", "metricShowName": "CPU利用率", "calcType": ">", "calcValue": "90",
                    "calcUnit": "%", "currentValue": "100", "historyValue": "5", "unit": "%", "period": "60", "periodNum": "1",
                    "alarmNotifyType": "continuousAlarm", "alarmNotifyPeriod": 300}},
            "firstOccurTime": "2017-03-09 07:00:35", "durationTime": 500, "recoverTime": "0"})
    }

    #[test]
    fn an_alarm_and_its_recovery_share_a_thread() {
        let Parsed::Events(a) = parse(&alarm("1")).unwrap() else {
            panic!()
        };
        let Parsed::Events(ok) = parse(&alarm("0")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (a[0].status, ok[0].status),
            (Status::Firing, Status::Resolved)
        );
        assert_eq!(a[0].thread, ok[0].thread);
        assert_eq!(a[0].title, "CPU high · ins-o9p3rg3m");
        assert!(
            a[0].text.contains("**Condition:** CPU利用率 > 90%"),
            "{}",
            a[0].text
        );
        assert!(a[0].text.contains("**Current:** 100%"), "{}", a[0].text);
        assert_eq!(a[0].labels["instance"], "ins-o9p3rg3m");
    }

    #[test]
    fn a_numeric_status_is_read_and_bad_ones_are_named() {
        let mut n = alarm("1");
        n["alarmStatus"] = json!(0);
        assert!(
            matches!(parse(&n).unwrap(), Parsed::Events(ref e) if e[0].status == Status::Resolved)
        );
        assert_eq!(parse(&alarm("2")).unwrap_err().field, "alarmStatus");
        let mut no_policy = alarm("1");
        no_policy["alarmPolicyInfo"] = json!({});
        assert_eq!(
            parse(&no_policy).unwrap_err().field,
            "alarmPolicyInfo.policyId"
        );
    }
}
