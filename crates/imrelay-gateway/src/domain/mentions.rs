//! Mentions as written in a route or a request: the platforms' own ids
//! (`{ all = true }`, `{ mobiles = [...], user_ids = [...] }`), or a list of
//! references the on-call feature resolves at accept (`["oncall:dba",
//! "label:owner", "zhangsan"]`).

use imrelay_sdk::message::Mentions;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MentionsSpec {
    Direct(Mentions),
    Refs(Vec<String>),
}

impl Default for MentionsSpec {
    fn default() -> Self {
        MentionsSpec::Direct(Mentions::default())
    }
}

impl MentionsSpec {
    /// The platform ids written directly (none for references).
    pub fn direct(&self) -> Mentions {
        match self {
            MentionsSpec::Direct(m) => m.clone(),
            MentionsSpec::Refs(_) => Mentions::default(),
        }
    }

    /// The references written (none for direct ids).
    pub fn refs(&self) -> Vec<String> {
        match self {
            MentionsSpec::Refs(r) => r.clone(),
            MentionsSpec::Direct(_) => Vec::new(),
        }
    }
}

impl<'de> Deserialize<'de> for MentionsSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MentionsSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an object ({\"all\": true} or {\"mobiles\": [...], \"user_ids\": [...]}) or a list of references ([\"oncall:dba\", \"label:owner\", \"zhangsan\"])",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Mentions::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(MentionsSpec::Direct)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(MentionsSpec::Refs)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_anything_else_says_what_to_write() {
        let direct: MentionsSpec = serde_json::from_str(r#"{"all": true}"#).unwrap();
        assert!(direct.direct().all);
        let refs: MentionsSpec = serde_json::from_str(r#"["oncall:dba", "zhangsan"]"#).unwrap();
        assert_eq!(refs.refs(), ["oncall:dba", "zhangsan"]);
        let e = serde_json::from_str::<MentionsSpec>("42")
            .unwrap_err()
            .to_string();
        assert!(e.contains("a list of references"), "{e}");
    }
}
