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
    }
}
