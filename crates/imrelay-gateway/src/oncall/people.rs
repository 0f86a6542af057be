//! `[[people]]`: the directory of people, with their ids on each platform,
//! so mentions, schedules and escalation steps can name a person once.
//!
//! ```toml
//! [[people]]
//! name = "zhangsan"                      # how schedules, labels and mentions name them
//! display = "张三"
//! phone = "+8613800000001"               # SMS and voice
//! email = "zhangsan@example.com"
//! dingtalk = { userid = "zhangsan01", mobile = "13800000001" }
//! feishu = { open_id = "ou_5ad573a6411d72b8305fda3a9c15c70e" }
//! wecom = { userid = "ZhangSan" }
//! ```

use std::collections::BTreeMap;

use imrelay_sdk::message::Platform;
use serde::Deserialize;

use crate::domain::config::ConfigIssue;

/// `[[people]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    pub name: String,
    #[serde(default)]
    pub display: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub dingtalk: Option<DingtalkIds>,
    #[serde(default)]
    pub feishu: Option<FeishuIds>,
    #[serde(default)]
    pub wecom: Option<WecomIds>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingtalkIds {
    #[serde(default)]
    pub userid: Option<String>,
    /// The phone number DingTalk robots @ by.
    #[serde(default)]
    pub mobile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuIds {
    #[serde(default)]
    pub open_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomIds {
    pub userid: String,
}

/// How a destination addresses a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Address {
    /// The platform's user id (DingTalk userid, Feishu open_id, WeCom userid).
    UserId(Platform),
    /// A phone number: SMS, voice.
    Phone,
    /// The phone number DingTalk knows them by (robots @ by it).
    DingtalkMobile,
    Email,
}

/// The compiled directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    people: BTreeMap<String, PersonConfig>,
}

impl Directory {
    /// Compile; problems are pushed to `issues`, each naming its key.
    pub fn compile(cfgs: &[PersonConfig], issues: &mut Vec<ConfigIssue>) -> Directory {
        let mut people = BTreeMap::new();
        for (i, p) in cfgs.iter().enumerate() {
            let at = |k: &str| format!("people[{i}].{k}");
            if p.name.trim().is_empty() || p.name.contains([':', ',', ' ']) {
                issues.push(ConfigIssue::new(
                    at("name"),
                    "name the person with a word without spaces, commas or colons, e.g. \"zhangsan\"",
                ));
                continue;
            }
            if let Some(phone) = &p.phone {
                if !valid_phone(phone) {
                    issues.push(ConfigIssue::new(
                        at("phone"),
                        format!("`{phone}` is not a phone number; write it as +8613800000000 or 13800000000"),
                    ));
                }
            }
            if let Some(email) = &p.email {
                if !email.contains('@') || email.trim() != email {
                    issues.push(ConfigIssue::new(
                        at("email"),
                        format!("`{email}` is not an email address"),
                    ));
                }
            }
            if people.insert(p.name.clone(), p.clone()).is_some() {
                issues.push(ConfigIssue::new(
                    at("name"),
                    format!("`{}` is defined twice", p.name),
                ));
            }
        }
        Directory { people }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.people.contains_key(name)
    }

    pub fn display_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.people
            .get(name)
            .and_then(|p| p.display.as_deref())
            .unwrap_or(name)
    }

    /// How `name` is reached by `how`, when the directory knows.
    pub fn address(&self, name: &str, how: Address) -> Option<String> {
        let p = self.people.get(name)?;
        match how {
            Address::Phone => p
                .phone
                .clone()
                .or_else(|| p.dingtalk.as_ref().and_then(|d| d.mobile.clone())),
            Address::DingtalkMobile => p
                .dingtalk
                .as_ref()
                .and_then(|d| d.mobile.clone())
                .or_else(|| p.phone.clone()),
            Address::Email => p.email.clone(),
            Address::UserId(Platform::Dingtalk) => p.dingtalk.as_ref()?.userid.clone(),
            Address::UserId(Platform::Feishu) => {
                let f = p.feishu.as_ref()?;
                f.open_id.clone().or_else(|| f.user_id.clone())
            }
            Address::UserId(Platform::Wecom) => Some(p.wecom.as_ref()?.userid.clone()),
            Address::UserId(_) => None,
        }
    }

    /// The person whose id on any platform (or phone, or email) is `id`: a
    /// card click names its clicker by platform id.
    pub fn by_platform_id(&self, id: &str) -> Option<&str> {
        self.people.values().find_map(|p| {
            let ids = [
                p.dingtalk.as_ref().and_then(|d| d.userid.as_deref()),
                p.feishu.as_ref().and_then(|f| f.open_id.as_deref()),
                p.feishu.as_ref().and_then(|f| f.user_id.as_deref()),
                p.wecom.as_ref().map(|w| w.userid.as_str()),
            ];
            ids.contains(&Some(id)).then_some(p.name.as_str())
        })
    }
}

/// A mainland mobile (11 digits from 1) or an E.164 number.
fn valid_phone(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(toml_text: &str) -> (Directory, Vec<ConfigIssue>) {
        #[derive(Deserialize)]
        struct F {
            people: Vec<PersonConfig>,
        }
        let f: F = toml::from_str(toml_text).unwrap();
        let mut issues = Vec::new();
        (Directory::compile(&f.people, &mut issues), issues)
    }

    #[test]
    fn a_person_is_addressed_by_each_platform_its_own_way() {
        let (d, issues) = dir(r#"
            [[people]]
            name = "zhangsan"
            phone = "+8613800000001"
            email = "zs@example.com"
            dingtalk = { userid = "zs01", mobile = "13800000001" }
            feishu = { open_id = "ou_zs" }
            wecom = { userid = "ZhangSan" }
        "#);
        assert!(issues.is_empty(), "{issues:?}");
        let zs = |how| d.address("zhangsan", how);
        assert_eq!(
            zs(Address::UserId(Platform::Feishu)).as_deref(),
            Some("ou_zs")
        );
        assert_eq!(
            zs(Address::UserId(Platform::Dingtalk)).as_deref(),
            Some("zs01")
        );
        assert_eq!(
            zs(Address::UserId(Platform::Wecom)).as_deref(),
            Some("ZhangSan")
        );
        assert_eq!(zs(Address::Phone).as_deref(), Some("+8613800000001"));
        assert_eq!(zs(Address::Email).as_deref(), Some("zs@example.com"));
        assert_eq!(d.by_platform_id("ou_zs"), Some("zhangsan"));
        assert_eq!(d.address("nobody", Address::Phone), None);
    }

    #[test]
    fn bad_entries_are_named_by_key() {
        let (_, issues) = dir(r#"
            [[people]]
            name = "a"
            phone = "call me"
            [[people]]
            name = "a"
            email = "nope"
        "#);
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            ["people[0].phone", "people[1].email", "people[1].name"]
        );
    }
}
