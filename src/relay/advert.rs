//! Hyperbahn advertisement bodies ([RELAY-10]).

use serde_json::Value;

/// The service names of an `ad` or `unad` body:
/// `{"services":[{"serviceName":"S","cost":0}, ...]}`.
pub fn parse_services(arg3: &[u8]) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_slice(arg3).map_err(|e| format!("arg3 is not JSON: {e}"))?;
    let list = v
        .get("services")
        .and_then(Value::as_array)
        .ok_or("arg3 has no \"services\" array")?;
    let mut out = Vec::with_capacity(list.len());
    for s in list {
        let name = s
            .get("serviceName")
            .and_then(Value::as_str)
            .ok_or("a service has no \"serviceName\" string")?;
        if name.is_empty() || name.len() > 255 {
            return Err(format!("service name of {} bytes (1 to 255)", name.len()));
        }
        out.push(name.to_owned());
    }
    Ok(out)
}

/// The body of an advertisement for `services`, as clients send it.
pub fn services_body(services: &[&str]) -> String {
    let list: Vec<Value> = services
        .iter()
        .map(|s| serde_json::json!({"serviceName": s, "cost": 0}))
        .collect();
    serde_json::json!({ "services": list }).to_string()
}

/// One entry of a `relay-ad` body, as a relay tells its peer relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAd {
    /// The service.
    pub service: String,
    /// The peer that serves it.
    pub host_port: String,
    /// `true` for an advertisement, `false` for a withdrawal.
    pub ad: bool,
}

/// The body of `hyperbahn::relay-ad`:
/// `{"adverts":[{"serviceName":"S","hostPort":"h:p","ad":true}, ...]}`.
pub fn relay_ads_body(ads: &[RelayAd]) -> String {
    let list: Vec<Value> = ads
        .iter()
        .map(|a| serde_json::json!({"serviceName": a.service, "hostPort": a.host_port, "ad": a.ad}))
        .collect();
    serde_json::json!({ "adverts": list }).to_string()
}

/// Parses a `relay-ad` body.
pub fn parse_relay_ads(arg3: &[u8]) -> Result<Vec<RelayAd>, String> {
    let v: Value = serde_json::from_slice(arg3).map_err(|e| format!("arg3 is not JSON: {e}"))?;
    let list = v
        .get("adverts")
        .and_then(Value::as_array)
        .ok_or("arg3 has no \"adverts\" array")?;
    let mut out = Vec::with_capacity(list.len());
    for a in list {
        let service = a
            .get("serviceName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let host_port = a
            .get("hostPort")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if service.is_empty() || service.len() > 255 {
            return Err(format!(
                "service name of {} bytes (1 to 255)",
                service.len()
            ));
        }
        if crate::frame::parse_host_port(host_port).is_none() {
            return Err(format!("hostPort {host_port:?} is not host:port"));
        }
        out.push(RelayAd {
            service: service.to_owned(),
            host_port: host_port.to_owned(),
            ad: a.get("ad").and_then(Value::as_bool).unwrap_or(true),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_bad_ones_are_named() {
        let body = services_body(&["a", "b"]);
        assert_eq!(parse_services(body.as_bytes()).unwrap(), ["a", "b"]);
        assert!(parse_services(b"{}").unwrap_err().contains("services"));
        assert!(
            parse_services(b"{\"services\":[{}]}")
                .unwrap_err()
                .contains("serviceName")
        );
        assert!(parse_services(b"nope").is_err());
        let ads = vec![RelayAd {
            service: "s".into(),
            host_port: "127.0.0.1:5".into(),
            ad: false,
        }];
        assert_eq!(
            parse_relay_ads(relay_ads_body(&ads).as_bytes()).unwrap(),
            ads
        );
        assert!(parse_relay_ads(br#"{"adverts":[{"serviceName":"s","hostPort":"x"}]}"#).is_err());
    }
}
