//! The `Meta` service every channel answers (feature `thrift`):
//! `Meta::health`, `Meta::versionInfo` and `Meta::thriftIDL` over thrift, on
//! each service the channel serves and on the service name `tchannel`
//! (`spec/08-arg-schemes.md` SCHEME-18, SCHEME-19).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::Error;
use crate::frame::ErrorCode;
use crate::idl::{Idl, decode_fields, encode_fields};
use crate::server::{HandlerResult, Request, Response};

/// The reference `meta.thrift` (tchannel-go's): the newer `health` takes a
/// `HealthRequest`; older peers (node 4.0.1) call it with no arguments.
pub const META_IDL: &str = r#"
enum HealthState {
    REFUSING = 0,
    ACCEPTING = 1,
    STOPPING = 2,
    STOPPED = 3,
}

enum HealthRequestType {
    PROCESS = 0,
    TRAFFIC = 1,
}

struct HealthRequest {
    1: optional HealthRequestType type,
}

struct HealthStatus {
    1: required bool ok,
    2: optional string message,
    3: optional HealthState state,
}

typedef string filename

struct ThriftIDLs {
    1: required map<filename, string> idls,
    2: required filename entryPoint,
}

struct VersionInfo {
    1: required string language,
    2: required string language_version,
    3: required string version,
}

service Meta {
    HealthStatus health(1: HealthRequest hr),
    ThriftIDLs thriftIDL(),
    VersionInfo versionInfo(),
}
"#;

/// The meta IDL, parsed once.
pub(crate) fn meta_idl() -> &'static Idl {
    static IDL: OnceLock<Idl> = OnceLock::new();
    IDL.get_or_init(|| Idl::parse_str("meta.thrift", META_IDL).unwrap_or_default())
}

/// Which health a caller asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthKind {
    /// The process is up (the default, and the no-argument call).
    Process,
    /// The channel takes new traffic.
    Traffic,
}

/// An application's own health check: `Err(message)` is not ok.
pub(crate) type HealthCheck = Arc<dyn Fn(HealthKind) -> Result<(), String> + Send + Sync>;

const ACCEPTING: u8 = 1;
const STOPPING: u8 = 2;
const STOPPED: u8 = 3;

/// What `Meta` reports for a channel.
pub(crate) struct MetaState {
    state: AtomicU8,
    check: RwLock<Option<HealthCheck>>,
    idls: RwLock<(Vec<(String, String)>, String)>,
}

impl Default for MetaState {
    fn default() -> MetaState {
        MetaState {
            state: AtomicU8::new(ACCEPTING),
            check: RwLock::new(None),
            idls: RwLock::new((Vec::new(), String::new())),
        }
    }
}

impl MetaState {
    pub(crate) fn draining(&self) {
        let _ =
            self.state
                .compare_exchange(ACCEPTING, STOPPING, Ordering::AcqRel, Ordering::Acquire);
    }

    pub(crate) fn stopped(&self) {
        self.state.store(STOPPED, Ordering::Release);
    }

    pub(crate) fn set_check(&self, check: Option<HealthCheck>) {
        *self.check.write().unwrap_or_else(|e| e.into_inner()) = check;
    }

    pub(crate) fn set_idls(&self, idls: Vec<(String, String)>, entry: String) {
        *self.idls.write().unwrap_or_else(|e| e.into_inner()) = (idls, entry);
    }

    fn health(&self, kind: Option<HealthKind>) -> Value {
        let state = self.state.load(Ordering::Acquire);
        let name = match state {
            ACCEPTING => "ACCEPTING",
            STOPPING => "STOPPING",
            _ => "STOPPED",
        };
        let check = self.check.read().unwrap_or_else(|e| e.into_inner()).clone();
        let custom = check.and_then(|c| c(kind.unwrap_or(HealthKind::Process)).err());
        let (ok, message) = match (kind, state, custom) {
            (_, STOPPED, _) => (false, Some("stopped".to_owned())),
            (Some(HealthKind::Traffic), STOPPING, _) => (false, Some("draining".to_owned())),
            (_, _, Some(m)) => (false, Some(m)),
            _ => (true, None),
        };
        // [SCHEME-19] The no-argument call gets the older answer, {ok} and a
        // message only: node 4.0.1's IDL has no state.
        let mut v = json!({ "ok": ok });
        if let Some(m) = message {
            v["message"] = json!(m);
        }
        if kind.is_some() {
            v["state"] = json!(name);
        }
        v
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(ErrorCode::BAD_REQUEST, msg.into())
}

/// Answers one `Meta::*` call.
pub(crate) async fn handle(state: Arc<MetaState>, req: Request) -> HandlerResult {
    let method = req.method_str();
    crate::scheme::thrift::parse_headers(&req.arg2)?;
    let body = req.arg3.into_bytes().await?;
    let out = answer(&state, &method, &body)?;
    Ok(Response::ok(Bytes::from_static(&[0, 0]), out))
}

/// The result struct answering `method` (`Meta::health`, ...) with args
/// `body`: for a channel's handler and for the relay, which answers for
/// itself.
pub(crate) fn answer(state: &MetaState, method: &str, body: &[u8]) -> Result<Bytes, Error> {
    let idl = meta_idl();
    let Some((_, f)) = idl.method(method) else {
        return Err(bad(format!("no such method {method:?} of Meta")));
    };
    let args = decode_fields(idl, &format!("{method} args"), &f.args, body)
        .map_err(|e| bad(format!("{method}: {e}")))?;
    let result = match f.name.as_str() {
        "health" => {
            let kind = args
                .get("hr")
                .map(|hr| match hr.get("type").and_then(Value::as_str) {
                    Some("TRAFFIC") => HealthKind::Traffic,
                    _ => HealthKind::Process,
                });
            state.health(kind)
        }
        "versionInfo" => json!({
            "language": "rust",
            "language_version": option_env!("CARGO_PKG_RUST_VERSION").unwrap_or("stable"),
            "version": env!("CARGO_PKG_VERSION"),
        }),
        _ => {
            let (idls, entry) = state.idls.read().unwrap_or_else(|e| e.into_inner()).clone();
            let map: serde_json::Map<String, Value> = idls
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            json!({ "idls": map, "entryPoint": entry })
        }
    };
    let out = encode_fields(
        idl,
        &format!("{method} result"),
        &f.result_fields(),
        &json!({ "success": result }),
    )
    .map_err(|e| Error::new(ErrorCode::UNEXPECTED, e.0))?;
    Ok(Bytes::from(out))
}
