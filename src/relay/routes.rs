//! Static routes: a JSON object `{"SERVICE": ["host:port", ...], ...}`
//! ([RELAY-12]).

use std::path::Path;

use serde_json::Value;

/// Parses a routes file's text. Every service name is 1 to 255 bytes and
/// every peer a `host:port`.
pub fn parse_routes(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("expected a JSON object of service names to lists of \"host:port\"")?;
    let mut out = Vec::with_capacity(obj.len());
    for (service, peers) in obj {
        if service.is_empty() || service.len() > 255 {
            return Err(format!("service name {service:?}: 1 to 255 bytes"));
        }
        let list = peers
            .as_array()
            .ok_or_else(|| format!("service {service:?}: expected a list of \"host:port\""))?;
        let mut hps = Vec::with_capacity(list.len());
        for p in list {
            let hp = p
                .as_str()
                .ok_or_else(|| format!("service {service:?}: {p} is not a string"))?;
            if crate::frame::parse_host_port(hp).is_none() {
                return Err(format!("service {service:?}: {hp:?} is not host:port"));
            }
            hps.push(hp.to_owned());
        }
        out.push((service.clone(), hps));
    }
    Ok(out)
}

/// Reads and parses a routes file.
pub fn read_routes(path: &Path) -> Result<Vec<(String, Vec<String>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_routes(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_and_errors_say_where() {
        // [RELAY-12]
        let r = parse_routes(r#"{"a": ["127.0.0.1:1", "h:2"], "b": []}"#).unwrap();
        assert_eq!(r[0], ("a".into(), vec!["127.0.0.1:1".into(), "h:2".into()]));
        assert!(parse_routes("[]").unwrap_err().contains("object"));
        assert!(
            parse_routes(r#"{"a": ["nope"]}"#)
                .unwrap_err()
                .contains("nope")
        );
        assert!(
            parse_routes(r#"{"a": "h:1"}"#)
                .unwrap_err()
                .contains("list")
        );
        assert!(parse_routes("{").unwrap_err().contains("JSON"));
    }
}
