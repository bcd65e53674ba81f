//! The model vocabulary that admission and Stage 2 share: the scripted model and its
//! script format, the one API the harness speaks, and admitted endpoints.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// The provider name of the harness's scripted model.
pub(crate) const SCRIPTED: &str = "scripted";
pub(crate) const SCRIPT_SCHEMA: &str = "cto-ledger/model-script/v1";
/// The one API the harness speaks (pi's name for it).
pub(crate) const API: &str = "openai-completions";

/// A model script: per agent role (the word after `# ` in its system prompt, lowercase),
/// the answers in order. Answer N goes to the request holding N assistant messages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Script {
    pub schema: String,
    /// For the script's readers; the server does not use it.
    #[serde(default)]
    #[allow(dead_code)]
    pub description: String,
    pub roles: BTreeMap<String, Vec<Turn>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Turn {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ToolCall {
    pub name: String,
    pub arguments: Value,
}

/// Parses and checks a script; `origin` names it in errors.
pub(crate) fn parse_script(origin: &str, bytes: &[u8]) -> Result<Script> {
    let bad = |why: String| {
        Error::bad_input(
            format!("model script {origin}: {why}"),
            "see docs/stage2.md (model scripts) for the format",
        )
    };
    let s: Script = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if s.schema != SCRIPT_SCHEMA {
        return Err(bad(format!("schema must be `{SCRIPT_SCHEMA}`")));
    }
    if s.roles.is_empty() {
        return Err(bad("has no roles".into()));
    }
    for (role, turns) in &s.roles {
        if turns.is_empty() {
            return Err(bad(format!("role `{role}` has no answers")));
        }
        for (i, t) in turns.iter().enumerate() {
            if t.content.is_none() && t.tool_calls.is_empty() {
                return Err(bad(format!(
                    "role `{role}` answer {i} has neither content nor tool_calls"
                )));
            }
        }
    }
    Ok(s)
}

/// An admitted endpoint as the harness uses it: the origin exchanges are forwarded to
/// (`scheme://host:port`) and the base path the provider is given (`/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub origin: String,
    pub base: String,
}

impl Endpoint {
    /// `http://localhost:8080/v1` → origin `http://localhost:8080`, base `/v1`. `None`
    /// unless http or https with a host and no user, query or fragment.
    pub(crate) fn parse(url: &str) -> Option<Endpoint> {
        let (scheme, rest) = url.split_once("://")?;
        if scheme != "http" && scheme != "https" {
            return None;
        }
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if host.is_empty() || host.contains('@') || path.contains('?') || path.contains('#') {
            return None;
        }
        Some(Endpoint {
            origin: format!("{scheme}://{host}"),
            base: path.trim_end_matches('/').to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_split_into_origin_and_base() {
        let e = Endpoint::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(e.origin, "http://127.0.0.1:8080");
        assert_eq!(e.base, "/v1");
        assert_eq!(Endpoint::parse("https://api.example").unwrap().base, "");
        for bad in [
            "ftp://x/v1",
            "http://",
            "http://user@host/v1",
            "http://h/v1?key=1",
            "http://h/v1#f",
            "h/v1",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }
}
