//! Typed TChannel Thrift clients and servers from an IDL, for `build.rs`.
//!
//! In `build.rs`, `fn main() { tchan_build::compile("idl/echo.thrift", "echo.rs"); }`;
//! in the crate, `include!(concat!(env!("OUT_DIR"), "/echo.rs"));`. A whole
//! program: `examples/thrift-echo/` in tchan's repository.
//!
//! The types (structs, unions, exceptions, enums, typedefs, consts) and
//! their TBinaryProtocol code are pilota's (pilota-build: pure Rust, no
//! thrift compiler on the machine); the crate that includes the output
//! needs `pilota = "0.13"` and `tchan` as dependencies. For each service
//! `S`, tchan adds:
//!
//! - `SClient`: `SClient::new(client, "tchannel-service")`, one async method
//!   per IDL method, `Result<Ret, tchan::idl::generated::CallError<SMethodException>>`
//!   (declared exceptions typed; every other failure a `tchan::Error`);
//! - `trait SServer`: one async method per IDL method, returning
//!   `Result<Ret, tchan::idl::generated::ServerError<SMethodException>>`;
//! - `register_s(&channel, "tchannel-service", Arc<impl SServer>)`.
//!
//! Bytes from the network are checked against the IDL (embedded in the
//! output) by tchan's bounded decoder before pilota decodes them.

use std::path::{Path, PathBuf};

use pilota_build::db::RirDatabase;
use pilota_build::rir::{self, Method};
use pilota_build::{CodegenBackend, Context, DefId, IdentName, MakeBackend, ThriftBackend};

/// Generates `out_file` (in `OUT_DIR`) from the IDL at `idl` and what it
/// includes. Prints `cargo:rerun-if-changed` for the files read. Panics
/// (failing the build, as a build script does) when the IDL does not load.
pub fn compile(idl: impl AsRef<Path>, out_file: &str) {
    let idl = idl.as_ref();
    let abs = idl
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", idl.display()));
    let files = idl_files(&abs);
    let entry = abs
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR: run from build.rs"));
    let out = out_dir.join(out_file);
    pilota_build::Builder::thrift()
        .ignore_unused(false)
        .with_backend(MkTchan { entry, files })
        .compile_with_config(
            vec![pilota_build::IdlService::from_path(abs)],
            pilota_build::Output::File(out),
        );
}

/// The IDL file and every file it includes (relative to the including
/// file), as absolute paths, each once.
fn idl_files(entry: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut todo = vec![entry.to_path_buf()];
    while let Some(p) = todo.pop() {
        if out.contains(&p) {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("include ") {
                let name = rest.trim().trim_matches(|c| c == '"' || c == '\'');
                if let Ok(inc) = dir.join(name).canonicalize() {
                    todo.push(inc);
                }
            }
        }
        out.push(p);
    }
    out
}

struct MkTchan {
    entry: String,
    files: Vec<PathBuf>,
}

impl MakeBackend for MkTchan {
    type Target = TchanBackend;

    fn make_backend(self, cx: Context) -> TchanBackend {
        TchanBackend {
            inner: ThriftBackend::new(cx),
            entry: self.entry,
            files: self.files,
        }
    }
}

/// pilota's thrift backend, plus tchan's client, server trait and
/// registration for each service.
#[derive(Clone)]
struct TchanBackend {
    inner: ThriftBackend,
    entry: String,
    files: Vec<PathBuf>,
}

impl TchanBackend {
    /// The path of `{Service}{Method}{suffix}` (ArgsSend, ResultRecv, ...),
    /// in the base service's module for an inherited method.
    fn method_ty(&self, service: &str, m: &Method, suffix: &str) -> String {
        let method = (&**m.name).upper_camel_ident();
        match m.source {
            rir::MethodSource::Extend(base) => {
                let item = self.cx().expect_item(base);
                let base_name = match &*item {
                    rir::Item::Service(s) => (&**s.name).upper_camel_ident().to_string(),
                    _ => service.to_owned(),
                };
                let path = self.cx().cur_related_item_path(base);
                let mut segs: Vec<&str> = path.split("::").collect();
                segs.pop();
                let ident = format!("{base_name}{method}{suffix}");
                segs.push(&ident);
                segs.join("::")
            }
            rir::MethodSource::Own => format!("{service}{method}{suffix}"),
        }
    }

    /// The embedded IDL, as a function the service's code calls.
    fn idl_fn(&self, fn_name: &str) -> String {
        let files = self
            .files
            .iter()
            .map(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                format!("({name:?}, include_str!({:?}))", p.display().to_string())
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"fn {fn_name}() -> &'static ::tchan::idl::Idl {{
                static IDL: ::std::sync::OnceLock<::tchan::idl::Idl> = ::std::sync::OnceLock::new();
                IDL.get_or_init(|| ::tchan::idl::generated::embedded({entry:?}, &[{files}]))
            }}"#,
            entry = self.entry,
        )
    }
}

impl CodegenBackend for TchanBackend {
    const PROTOCOL: &'static str = "thrift";

    fn cx(&self) -> &Context {
        self.inner.cx()
    }

    fn codegen_struct_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Message) {
        self.inner.codegen_struct_impl(def_id, stream, s)
    }

    fn codegen_enum_impl(&self, def_id: DefId, stream: &mut String, e: &rir::Enum) {
        self.inner.codegen_enum_impl(def_id, stream, e)
    }

    fn codegen_newtype_impl(&self, def_id: DefId, stream: &mut String, t: &rir::NewType) {
        self.inner.codegen_newtype_impl(def_id, stream, t)
    }

    fn codegen_file_descriptor(&self, stream: &mut String, f: &rir::File, has_direct: bool) {
        self.inner.codegen_file_descriptor(stream, f, has_direct)
    }

    fn codegen_register_mod_file_descriptor(
        &self,
        stream: &mut String,
        mods: &[(pilota_build::ModPath, std::sync::Arc<PathBuf>)],
    ) {
        self.inner
            .codegen_register_mod_file_descriptor(stream, mods)
    }

    fn codegen_pilota_trait(&self, stream: &mut String) {
        self.inner.codegen_pilota_trait(stream)
    }

    fn codegen_service_impl(&self, def_id: DefId, stream: &mut String, s: &rir::Service) {
        let cx = self.cx();
        let svc = cx.rust_name(def_id).to_string();
        let idl_svc = (**s.name).to_string();
        let snake = (&*svc).snake_ident().to_string();
        let idl_fn = format!("__tchan_idl_{snake}");
        let methods = cx.service_methods(def_id);
        let mut client = String::new();
        let mut server = String::new();
        let mut register = String::new();
        for m in methods.iter() {
            let name = cx.rust_name(m.def_id).to_string();
            let arg1 = format!("{idl_svc}::{}", &**m.name);
            let ret = cx.codegen_item_ty(m.ret.kind.clone()).to_string();
            let params: Vec<(String, String)> = m
                .args
                .iter()
                .map(|a| {
                    (
                        cx.rust_name(a.def_id).to_string(),
                        cx.codegen_item_ty(a.ty.kind.clone()).to_string(),
                    )
                })
                .collect();
            let sig = params
                .iter()
                .map(|(n, t)| format!(", {n}: {t}"))
                .collect::<String>();
            let names = params.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            let args_send = self.method_ty(&svc, m, "ArgsSend");
            let args_recv = self.method_ty(&svc, m, "ArgsRecv");
            let result_recv = self.method_ty(&svc, m, "ResultRecv");
            let result_send = self.method_ty(&svc, m, "ResultSend");
            let (exc, variants): (String, Vec<String>) = match &m.exceptions {
                Some(p) => {
                    let path = cx.cur_related_item_path(p.did).to_string();
                    let vs = match &*cx.expect_item(p.did) {
                        rir::Item::Enum(e) => e
                            .variants
                            .iter()
                            .map(|v| cx.rust_name(v.did).to_string())
                            .collect(),
                        _ => Vec::new(),
                    };
                    (path, vs)
                }
                None => ("::std::convert::Infallible".to_owned(), Vec::new()),
            };
            let client_exc_arms = variants
                .iter()
                .map(|v| {
                    format!(
                        "{result_recv}::{v}(e) => ::std::result::Result::Err(::tchan::idl::generated::CallError::Exception({exc}::{v}(e))),"
                    )
                })
                .collect::<String>();
            let server_exc_arms = variants
                .iter()
                .map(|v| {
                    format!(
                        "::std::result::Result::Err(::tchan::idl::generated::ServerError::Exception({exc}::{v}(e))) => ({result_send}::{v}(e), true),"
                    )
                })
                .collect::<String>();
            let fields = names.join(", ");
            let from_args = names
                .iter()
                .map(|n| format!("args.{n}"))
                .collect::<Vec<_>>()
                .join(", ");
            client.push_str(&format!(
                r#"
    /// `{arg1}`.
    pub async fn {name}(&self{sig}) -> ::std::result::Result<{ret}, ::tchan::idl::generated::CallError<{exc}>> {{
        let args = {args_send} {{ {fields} }};
        let mut buf = ::pilota::BytesMut::new();
        ::pilota::thrift::Message::encode(&args, &mut ::pilota::thrift::binary::TBinaryProtocol::new(&mut buf, false))
            .map_err(::tchan::idl::generated::unexpected)?;
        let reply = ::tchan::scheme::thrift::call(&self.client, &self.service, "{arg1}", &self.headers, buf.freeze(), self.options.clone()).await?;
        let body = match reply {{
            ::tchan::scheme::thrift::Reply::Ok(_, b) => b,
            ::tchan::scheme::thrift::Reply::Exception(_, b) => b,
            _ => return ::std::result::Result::Err(::tchan::idl::generated::bad_request("unknown reply").into()),
        }};
        ::tchan::idl::generated::check({idl_fn}(), "{arg1}", true, &body)?;
        let mut body = body;
        let r = <{result_recv} as ::pilota::thrift::Message>::decode(&mut ::pilota::thrift::binary::TBinaryProtocol::new(&mut body, false))
            .map_err(::tchan::idl::generated::bad_request)?;
        #[allow(unreachable_patterns)]
        match r {{
            {result_recv}::Ok(v) => ::std::result::Result::Ok(v),
            {client_exc_arms}
        }}
    }}
"#
            ));
            server.push_str(&format!(
                r#"
    /// `{arg1}`.
    fn {name}(&self{sig}) -> impl ::std::future::Future<Output = ::std::result::Result<{ret}, ::tchan::idl::generated::ServerError<{exc}>>> + ::std::marker::Send;
"#
            ));
            register.push_str(&format!(
                r#"
    {{
        let server = server.clone();
        channel.register(service, "{arg1}", ::tchan::scheme::thrift::handler(move |req: ::tchan::scheme::thrift::ThriftRequest| {{
            let server = server.clone();
            async move {{
                ::tchan::idl::generated::check({idl_fn}(), "{arg1}", false, &req.body)?;
                let mut body = req.body.clone();
                #[allow(unused_variables)]
                let args = <{args_recv} as ::pilota::thrift::Message>::decode(&mut ::pilota::thrift::binary::TBinaryProtocol::new(&mut body, false))
                    .map_err(::tchan::idl::generated::bad_request)?;
                #[allow(unreachable_patterns)]
                let (result, exception) = match server.{name}({from_args}).await {{
                    ::std::result::Result::Ok(v) => ({result_send}::Ok(v), false),
                    {server_exc_arms}
                    ::std::result::Result::Err(::tchan::idl::generated::ServerError::Other(e)) => return ::std::result::Result::Err(e),
                    ::std::result::Result::Err(_) => return ::std::result::Result::Err(::tchan::idl::generated::unexpected("undeclared exception")),
                }};
                let mut buf = ::pilota::BytesMut::new();
                ::pilota::thrift::Message::encode(&result, &mut ::pilota::thrift::binary::TBinaryProtocol::new(&mut buf, false))
                    .map_err(::tchan::idl::generated::unexpected)?;
                let headers = req.headers.clone();
                ::std::result::Result::Ok(if exception {{
                    ::tchan::scheme::thrift::Reply::Exception(headers, buf.freeze())
                }} else {{
                    ::tchan::scheme::thrift::Reply::Ok(headers, buf.freeze())
                }})
            }}
        }}));
    }}
"#
            ));
        }
        let idl = self.idl_fn(&idl_fn);
        stream.push_str(&format!(
            r#"
{idl}

/// A client of the Thrift service `{idl_svc}` over a tchan connection.
#[derive(Clone)]
pub struct {svc}Client {{
    client: ::tchan::Client,
    service: ::std::string::String,
    headers: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
    options: ::tchan::CallOptions,
}}

impl {svc}Client {{
    /// Calls `{idl_svc}` methods as the TChannel service `service` on `client`.
    pub fn new(client: ::tchan::Client, service: impl ::std::convert::Into<::std::string::String>) -> Self {{
        Self {{ client, service: service.into(), headers: ::std::vec::Vec::new(), options: ::std::default::Default::default() }}
    }}

    /// Application headers (arg2) sent with every call.
    pub fn with_headers(mut self, headers: ::std::vec::Vec<(::std::string::String, ::std::string::String)>) -> Self {{
        self.headers = headers;
        self
    }}

    /// Call options (timeout, ...) for every call.
    pub fn with_options(mut self, options: ::tchan::CallOptions) -> Self {{
        self.options = options;
        self
    }}
{client}
}}

/// The server side of the Thrift service `{idl_svc}`: implement it and
/// register it with [`register_{snake}`].
pub trait {svc}Server: ::std::marker::Send + ::std::marker::Sync + 'static {{
{server}
}}

/// Serves `server` on `channel` as the TChannel service `service`: one
/// handler per method of `{idl_svc}` (arg1 `{idl_svc}::method`).
pub fn register_{snake}<S: {svc}Server>(channel: &::tchan::Channel, service: &str, server: ::std::sync::Arc<S>) {{
{register}
}}
"#
        ));
    }
}
