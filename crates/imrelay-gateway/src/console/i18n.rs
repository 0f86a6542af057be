//! English and Chinese. The language is the `imrelay_lang` cookie (set by
//! the switch in the page header), else the browser's `Accept-Language`.

use axum::http::{header, HeaderMap};

/// The cookie holding the chosen language.
pub const LANG_COOKIE: &str = "imrelay_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Lang::Zh)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The cookie's choice, else the first language of `Accept-Language` we
    /// have (by quality), else English.
    pub fn from_headers(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::auth::cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        let accept = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut best: Option<(f32, Lang)> = None;
        for part in accept.split(',') {
            let mut it = part.split(';');
            let tag = it.next().unwrap_or("");
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(l) = Lang::parse(tag) {
                if best.is_none_or(|(bq, _)| q > bq) {
                    best = Some((q, l));
                }
            }
        }
        best.map_or(Lang::En, |(_, l)| l)
    }

    /// `en` in this language (the English text is the key).
    pub fn t(self, en: &'static str) -> &'static str {
        match self {
            Lang::En => en,
            Lang::Zh => zh(en).unwrap_or(en),
        }
    }
}

fn zh(en: &str) -> Option<&'static str> {
    Some(match en {
        "imrelay console" => "imrelay 控制台",
        "Overview" => "概览",
        "Messages" => "消息",
        "Dead letters" => "死信",
        "Channels" => "通道",
        "Silences" => "静默",
        "On call" => "值班",
        "Audit" => "审计",
        "Audit trail" => "审计记录",
        "Every console action, newest first (logins too). Rows older than [console] audit_keep are deleted." => {
            "控制台的每个操作（包括登录），最新的在前。早于 [console] audit_keep 的记录会被删除。"
        }
        "Time" => "时间",
        "Action" => "操作",
        "Object" => "对象",
        "Source" => "来源",
        "Show" => "显示",
        "No entry." => "没有记录。",
        "Access token" => "访问令牌",
        "cached, expires at" => "已缓存，过期时间",
        "none cached" => "未缓存",
        "not used" => "不使用",
        "Last error" => "最近错误",
        "What each destination received" => "各目的地收到的内容",
        "The platform's request bodies, as rendered for each destination (signatures and tokens are added when sent and never shown)." => "按目的地渲染的平台请求体（签名和令牌在发送时添加，从不显示）。",
        "escalation" => "升级",
        "escalation step" => "升级步骤",
        "escalation ended" => "升级结束",
        "On call now" => "当前值班",
        "No schedule is configured ([[schedules]])." => "没有配置排班（[[schedules]]）。",
        "Schedule" => "排班",
        "Next" => "下一班",
        "From" => "自",
        "Nobody" => "无人",
        "override" => "临时替班",
        "Log in" => "登录",
        "Log out" => "退出",
        "User" => "用户",
        "Password" => "密码",
        "or an API key" => "或 API 密钥",
        "API key" => "API 密钥",
        "Wrong user name, password or key." => "用户名、密码或密钥错误。",
        "Too many failed logins; wait a few minutes." => "登录失败次数过多，请几分钟后再试。",
        "The form expired; reload the page and try again." => "表单已过期，请刷新页面后重试。",
        "Accepted" => "已接收",
        "Delivered" => "已送达",
        "Dead" => "死信",
        "Pending" => "待发送",
        "In flight" => "发送中",
        "Silenced" => "已静默",
        "Oldest pending" => "最早待发送",
        "Open breakers" => "熔断中",
        "Per minute, last hour" => "每分钟，最近一小时",
        "Accepted per minute" => "每分钟接收",
        "Delivered per minute" => "每分钟送达",
        "Dead per minute" => "每分钟死信",
        "Failed attempts" => "失败请求",
        "Failed attempts per minute" => "每分钟失败请求",
        "Channel" => "通道",
        "State" => "状态",
        "Text" => "文本",
        "Trace id" => "追踪 ID",
        "Since" => "起始时间",
        "Until" => "截止时间",
        "Search" => "搜索",
        "Any" => "全部",
        "Created" => "创建时间",
        "Message" => "消息",
        "No message matches." => "没有匹配的消息。",
        "Timeline" => "时间线",
        "accepted" => "已接收",
        "Deliveries" => "投递",
        "Target" => "目标",
        "Attempts" => "尝试次数",
        "Outcome" => "结果",
        "Platform code" => "平台错误码",
        "Meaning" => "含义",
        "Labels" => "标签",
        "Label" => "标签",
        "Acknowledgements" => "认领记录",
        "Silence like this" => "静默同类消息",
        "Duration" => "时长",
        "Comment" => "备注",
        "Create silence" => "创建静默",
        "Replay" => "重发",
        "Replay selected" => "重发所选",
        "Purge" => "清除",
        "Purge selected" => "清除所选",
        "Reason" => "原因",
        "Code" => "错误码",
        "Dead since" => "进入死信时间",
        "No dead letter." => "没有死信。",
        "Filter" => "筛选",
        "Health" => "健康状况",
        "Destination" => "目标地址",
        "Type" => "类型",
        "Breaker" => "熔断器",
        "Error rate" => "错误率",
        "Available now" => "当前可用额度",
        "Sent" => "已发送",
        "Send a test message" => "发送测试消息",
        "Send" => "发送",
        "Matchers" => "匹配条件",
        "Starts" => "开始",
        "Ends" => "结束",
        "Created by" => "创建者",
        "Expire" => "立即结束",
        "No silence." => "没有静默。",
        "Silences hold every channel's messages; only a user of every channel manages them." => {
            "静默会影响所有通道的消息，只有拥有全部通道权限的用户可以管理。"
        }
        "Not found" => "未找到",
        "Forbidden" => "禁止访问",
        "Error" => "错误",
        "Done" => "完成",
        "Fallback" => "备用通道",
        "Pool" => "机器人池",
        "yes" => "是",
        "no" => "否",
        "Language" => "语言",
        "Secrets are never shown." => "密钥永不显示。",
        "set" => "已设置",
        "Next page" => "下一页",
        "Replayed" => "已重发",
        "Purged" => "已清除",
        "Queued" => "已排队",
        "Silence created" => "静默已创建",
        "Silence ended" => "静默已结束",
        "delivered" => "已送达",
        "pending" => "待发送",
        "dead" => "死信",
        "partial" => "部分送达",
        "silenced" => "已静默",
        "Skip to content" => "跳到正文",
        "Main navigation" => "主导航",
        "Select" => "选择",
        "What to do" => "处理建议",
        "Templates" => "模板",
        "Success rate" => "成功率",
        "Template" => "模板",
        "None: plain text" => "无：纯文本",
        "Title" => "标题",
        "Template data (JSON)" => "模板数据（JSON）",
        "Preview" => "预览",
        "part(s)" => "条",
        "bytes" => "字节",
        "Part" => "第几条",
        "Short" => "短文本",
        "Long" => "长文本",
        "Non-ASCII" => "中文",
        "What each destination would receive (POST /v1/render): nothing is sent or stored." => {
            "各目标将收到的内容（POST /v1/render）：不会发送或存储。"
        }
        "Accept to delivered, last hour" => "从接收到送达（最近一小时）",
        "Alertmanager route templates" => "Alertmanager 路由模板",
        "Message preview" => "消息预览",
        "No Alertmanager route you may use is configured ([alerting.routes.NAME])." => {
            "没有您可以使用的 Alertmanager 路由（[alerting.routes.NAME]）。"
        }
        "Route" => "路由",
        "Sample notification" => "示例通知",
        "Firing (one alert)" => "告警中（一条）",
        "Resolved" => "已恢复",
        "Many alerts (25)" => "多条告警（25 条）",
        "Non-ASCII labels" => "中文标签",
        "Template source" => "模板源码",
        "built-in" => "内置",
        "template" => "模板",
        "limit" => "上限",
        "of content per request" => "（每条内容）",
        "per request body" => "（每个请求体）",
        "alerts shown" => "条告警已显示",
        "content" => "内容",
        "Save" => "保存",
        "Saved; the gateway reloaded the config." => "已保存，网关已重新加载配置。",
        "The config file cannot be written here; paste this into it:" => {
            "此处无法写入配置文件，请将以下内容粘贴到文件中："
        }
        "Only a user of every channel may save templates." => {
            "只有拥有全部通道权限的用户才能保存模板。"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(accept: &str, cookie: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        if let Some(c) = cookie {
            m.insert(header::COOKIE, c.parse().unwrap());
        }
        m
    }

    #[test]
    fn the_cookie_wins_then_the_browser_by_quality() {
        assert_eq!(
            Lang::from_headers(&h("zh-CN,zh;q=0.9,en;q=0.8", None)),
            Lang::Zh
        );
        assert_eq!(Lang::from_headers(&h("en-US,zh;q=0.5", None)), Lang::En);
        assert_eq!(
            Lang::from_headers(&h("fr,zh;q=0.4,en;q=0.3", None)),
            Lang::Zh
        );
        assert_eq!(Lang::from_headers(&h("fr", None)), Lang::En);
        assert_eq!(
            Lang::from_headers(&h("zh-CN", Some("imrelay_lang=en"))),
            Lang::En
        );
        assert_eq!(Lang::Zh.t("Dead letters"), "死信");
        assert_eq!(Lang::Zh.t("untranslated"), "untranslated");
    }
}
