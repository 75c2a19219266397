//! Arg schemes: how `json` and `thrift` calls use arg2 and arg3
//! (spec/08-arg-schemes.md). `raw` needs nothing: its args are opaque.
//!
//! Handlers adapt a typed function into a [`crate::Handler`]; the
//! client helpers build the matching requests. Thrift arg3 stays opaque bytes
//! (a bare TBinaryProtocol struct): tchan frames it but does not generate code.

use bytes::{BufMut, Bytes, BytesMut};

use crate::Error;
use crate::frame::{ErrorCode, ThriftHeaders};
use crate::transport::{HandlerResult, Request, Response};

fn bad_request(msg: impl Into<std::borrow::Cow<'static, str>>) -> Error {
    Error::new(ErrorCode::BAD_REQUEST, msg)
}

/// Checks that a request uses the scheme an endpoint serves ([SCHEME-1]).
fn expect_scheme(req: &Request, scheme: &str) -> Result<(), Error> {
    match req.scheme() {
        Some(s) if s == scheme => Ok(()),
        other => Err(bad_request(format!(
            "endpoint serves as={scheme}, request has as={}",
            other.unwrap_or("(none)")
        ))),
    }
}

/// Checks the scheme and takes the request's whole arg3.
async fn take_body(req: &mut Request, scheme: &str) -> Result<Bytes, Error> {
    expect_scheme(req, scheme)?;
    req.take_arg3().into_bytes().await
}

/// The `json` scheme.
#[cfg(feature = "json")]
pub mod json {
    use super::*;
    use serde_json::{Map, Value};

    /// Reads json arg2: an object of strings; empty or `null` means none.
    pub fn parse_headers(arg2: &[u8]) -> Result<Vec<(String, String)>, Error> {
        if arg2.iter().all(u8::is_ascii_whitespace) {
            return Ok(Vec::new());
        }
        match serde_json::from_slice::<Value>(arg2) {
            Ok(Value::Null) => Ok(Vec::new()),
            Ok(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    other => Err(bad_request(format!(
                        "json header {k:?} is not a string: {other}"
                    ))),
                })
                .collect(),
            Ok(other) => Err(bad_request(format!("json arg2 is not an object: {other}"))),
            Err(e) => Err(bad_request(format!("json arg2 is not JSON: {e}"))),
        }
    }

    /// Writes json arg2: always an object (`{}` when empty).
    pub fn encode_headers(headers: &[(String, String)]) -> Bytes {
        let m: Map<String, Value> = headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Bytes::from(Value::Object(m).to_string())
    }

    /// Reads json arg3: one value; empty means `null`.
    pub fn parse_body(arg3: &[u8]) -> Result<Value, Error> {
        if arg3.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(arg3).map_err(|e| bad_request(format!("json arg3 is not JSON: {e}")))
    }

    /// An application error as json arg3: `{"type": ..., "message": ...}`.
    pub fn error_body(kind: &str, message: &str) -> Value {
        serde_json::json!({"type": kind, "message": message})
    }

    /// What a json handler returns.
    #[derive(Debug, Clone, PartialEq)]
    #[non_exhaustive]
    pub enum Reply {
        /// Success: headers and the result value.
        Ok(Vec<(String, String)>, Value),
        /// Application error (code 0x01): headers and the error value.
        AppError(Vec<(String, String)>, Value),
    }

    /// Calls a json endpoint: sends `as=json`, arg2 the headers, arg3 the body.
    pub async fn call(
        client: &crate::Client,
        service: &str,
        method: &str,
        headers: &[(String, String)],
        body: &Value,
        mut options: crate::CallOptions,
    ) -> Result<Reply, Error> {
        options.set_scheme(crate::ArgScheme::Json);
        let req = crate::CallRequest {
            service: Bytes::copy_from_slice(service.as_bytes()),
            method: Bytes::copy_from_slice(method.as_bytes()),
            arg2: encode_headers(headers),
            arg3: crate::Body::Full(Bytes::from(body.to_string())),
            options,
        };
        let resp = client.call(req).await?;
        let h = parse_headers(&resp.arg2)?;
        let v = parse_body(&resp.arg3)?;
        Ok(if resp.is_ok() {
            Reply::Ok(h, v)
        } else {
            Reply::AppError(h, v)
        })
    }

    /// A parsed json request.
    #[derive(Debug)]
    pub struct JsonRequest {
        /// The method.
        pub method: String,
        /// Application headers from arg2.
        pub headers: Vec<(String, String)>,
        /// The body from arg3.
        pub body: Value,
        /// The underlying request's metadata (arg3 already consumed).
        pub request: Request,
    }

    /// Adapts `f` into a handler for `as=json` calls.
    pub fn handler<F, Fut>(
        f: F,
    ) -> impl Fn(
        Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + Send>>
    + Send
    + Sync
    + 'static
    where
        F: Fn(JsonRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Reply, Error>> + Send + 'static,
    {
        let f = std::sync::Arc::new(f);
        move |mut req: Request| {
            let f = f.clone();
            Box::pin(async move {
                let arg3 = take_body(&mut req, "json").await?;
                let headers = parse_headers(&req.arg2)?;
                let body = parse_body(&arg3)?;
                let method = req.method_str();
                let reply = f(JsonRequest {
                    method,
                    headers,
                    body,
                    request: req,
                })
                .await?;
                Ok(match reply {
                    Reply::Ok(h, v) => Response::ok(encode_headers(&h), Bytes::from(v.to_string())),
                    Reply::AppError(h, v) => {
                        Response::app_error(encode_headers(&h), Bytes::from(v.to_string()))
                    }
                })
            })
        }
    }
}

/// The `thrift` scheme.
pub mod thrift {
    use super::*;

    /// Reads thrift arg2 (`nh:2 (k~2 v~2){nh}`); empty means no headers.
    pub fn parse_headers(arg2: &Bytes) -> Result<Vec<(String, String)>, Error> {
        if arg2.is_empty() {
            return Ok(Vec::new());
        }
        let h = ThriftHeaders::parse(arg2)
            .map_err(|e| bad_request(format!("thrift arg2 headers: {e}")))?;
        let mut out: Vec<(String, String)> = Vec::with_capacity(h.len());
        for (k, v) in h.iter() {
            let k = String::from_utf8_lossy(k).into_owned();
            let v = String::from_utf8_lossy(v).into_owned();
            // A repeated key keeps its last value.
            out.retain(|(k2, _)| *k2 != k);
            out.push((k, v));
        }
        Ok(out)
    }

    /// Writes thrift arg2; always writes the count (`00 00` when empty).
    pub fn encode_headers(headers: &[(String, String)]) -> Result<Bytes, Error> {
        let mut b = BytesMut::new();
        let n = u16::try_from(headers.len()).map_err(|_| bad_request("too many thrift headers"))?;
        b.put_u16(n);
        for (k, v) in headers {
            for s in [k, v] {
                let len = u16::try_from(s.len())
                    .map_err(|_| bad_request("thrift header over 65535 bytes"))?;
                b.put_u16(len);
                b.put_slice(s.as_bytes());
            }
        }
        Ok(b.freeze())
    }

    /// What a thrift handler returns: a result struct (code 0x00) or a
    /// declared exception (code 0x01), both as TBinaryProtocol bytes.
    #[derive(Debug, Clone, PartialEq, Eq)]
    #[non_exhaustive]
    pub enum Reply {
        /// Success: headers and the result struct.
        Ok(Vec<(String, String)>, Bytes),
        /// Declared exception: headers and the result struct with the exception field.
        Exception(Vec<(String, String)>, Bytes),
    }

    /// Calls a thrift endpoint: sends `as=thrift`, arg2 the header map, arg3
    /// the argument struct.
    pub async fn call(
        client: &crate::Client,
        service: &str,
        method: &str,
        headers: &[(String, String)],
        body: Bytes,
        mut options: crate::CallOptions,
    ) -> Result<Reply, Error> {
        options.set_scheme(crate::ArgScheme::Thrift);
        let req = crate::CallRequest {
            service: Bytes::copy_from_slice(service.as_bytes()),
            method: Bytes::copy_from_slice(method.as_bytes()),
            arg2: encode_headers(headers)?,
            arg3: crate::Body::Full(body),
            options,
        };
        let resp = client.call(req).await?;
        let h = parse_headers(&resp.arg2)?;
        Ok(if resp.is_ok() {
            Reply::Ok(h, resp.arg3)
        } else {
            Reply::Exception(h, resp.arg3)
        })
    }

    /// A parsed thrift request.
    #[derive(Debug)]
    pub struct ThriftRequest {
        /// arg1: `Service::method`.
        pub method: String,
        /// Application headers from arg2.
        pub headers: Vec<(String, String)>,
        /// arg3: the argument struct, TBinaryProtocol bytes.
        pub body: Bytes,
        /// The underlying request's metadata (arg3 already consumed).
        pub request: Request,
    }

    /// Adapts `f` into a handler for `as=thrift` calls. An undeclared
    /// exception is the handler returning `Err` with code unexpected (0x05).
    pub fn handler<F, Fut>(
        f: F,
    ) -> impl Fn(
        Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HandlerResult> + Send>>
    + Send
    + Sync
    + 'static
    where
        F: Fn(ThriftRequest) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Reply, Error>> + Send + 'static,
    {
        let f = std::sync::Arc::new(f);
        move |mut req: Request| {
            let f = f.clone();
            Box::pin(async move {
                let body = take_body(&mut req, "thrift").await?;
                let headers = parse_headers(&req.arg2)?;
                let method = req.method_str();
                let reply = f(ThriftRequest {
                    method,
                    headers,
                    body,
                    request: req,
                })
                .await?;
                Ok(match reply {
                    Reply::Ok(h, b) => Response::ok(encode_headers(&h)?, b),
                    Reply::Exception(h, b) => Response::app_error(encode_headers(&h)?, b),
                })
            })
        }
    }
}
