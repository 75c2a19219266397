//! A Thrift IDL loaded at run time: files parsed by pilota-thrift-parser,
//! `include`s followed relative to the including file, names resolved,
//! typedefs unwrapped, services flattened with what they `extends`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pilota_thrift_parser as ast;

use crate::util::HashMap;

/// Why an IDL could not be loaded. Names the file and the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdlError(pub String);

impl std::fmt::Display for IdlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdlError {}

fn err(msg: impl Into<String>) -> IdlError {
    IdlError(msg.into())
}

/// A resolved Thrift type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// `void` (a method's return type only).
    Void,
    /// `bool`.
    Bool,
    /// `byte` / `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `double`.
    Double,
    /// `string`: UTF-8.
    String,
    /// `binary`.
    Binary,
    /// `list<T>`.
    List(Box<Type>),
    /// `set<T>`.
    Set(Box<Type>),
    /// `map<K, V>`.
    Map(Box<Type>, Box<Type>),
    /// A struct, union or exception: an index into [`Idl::structs`].
    Struct(usize),
    /// An enum: an index into [`Idl::enums`].
    Enum(usize),
}

/// `required`, `optional` or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requiredness {
    /// `required`.
    Required,
    /// `optional`.
    Optional,
    /// Neither (written when set, may be absent).
    Default,
}

/// A field of a struct, of an args struct or of a result struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field id.
    pub id: i16,
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: Type,
    /// Its requiredness.
    pub required: Requiredness,
}

/// What kind of struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StructKind {
    /// `struct`.
    Struct,
    /// `union`: exactly one field set.
    Union,
    /// `exception`.
    Exception,
}

/// A struct, union or exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructDef {
    /// Its name, qualified by its file when it is not the entry file's
    /// (`shared.Thing`).
    pub name: String,
    /// Struct, union or exception.
    pub kind: StructKind,
    /// Fields in declared order.
    pub fields: Vec<Field>,
}

/// An enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumDef {
    /// Its name.
    pub name: String,
    /// Values in declared order.
    pub values: Vec<(String, i32)>,
}

impl EnumDef {
    /// The name of value `v`.
    pub fn name_of(&self, v: i32) -> Option<&str> {
        self.values
            .iter()
            .find(|(_, x)| *x == v)
            .map(|(n, _)| n.as_str())
    }

    /// The value named `n`.
    pub fn value_of(&self, n: &str) -> Option<i32> {
        self.values.iter().find(|(x, _)| x == n).map(|(_, v)| *v)
    }
}

/// A method of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The method name.
    pub name: String,
    /// The args struct's fields.
    pub args: Vec<Field>,
    /// The return type (`Void` for none).
    pub returns: Type,
    /// The declared exceptions: result struct fields 1..
    pub throws: Vec<Field>,
    /// `oneway`.
    pub oneway: bool,
}

impl Function {
    /// The result struct's fields: `success` in field 0 (absent for void),
    /// then the declared exceptions.
    pub fn result_fields(&self) -> Vec<Field> {
        let mut out = Vec::with_capacity(self.throws.len() + 1);
        if self.returns != Type::Void {
            out.push(Field {
                id: 0,
                name: "success".to_owned(),
                ty: self.returns.clone(),
                required: Requiredness::Optional,
            });
        }
        out.extend(self.throws.iter().cloned());
        out
    }
}

/// A service, with the methods of the services it extends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Own and inherited methods.
    pub functions: Vec<Function>,
}

/// A loaded IDL.
#[derive(Debug, Clone, Default)]
pub struct Idl {
    /// Structs, unions and exceptions of every file loaded.
    pub structs: Vec<StructDef>,
    /// Enums of every file loaded.
    pub enums: Vec<EnumDef>,
    /// Services of every file loaded, by name (the entry file's unqualified).
    pub services: Vec<Service>,
}

impl Idl {
    /// Loads `path` and every file it includes (paths relative to the
    /// including file).
    pub fn load(path: &Path) -> Result<Idl, IdlError> {
        let mut loader = Loader::default();
        let entry = loader.file(path, 0)?;
        loader.resolve(entry)
    }

    /// Loads an IDL given as text, without includes.
    pub fn parse_str(name: &str, text: &str) -> Result<Idl, IdlError> {
        let file = ast::FileParser::new(ast::FileSource::new(text))
            .parse()
            .map_err(|e| err(format!("{name}: {e}")))?;
        let mut loader = Loader::default();
        loader.files.push(LoadedFile {
            stem: String::new(),
            file,
            includes: HashMap::default(),
        });
        loader.resolve(0)
    }

    /// Loads an IDL from memory: `entry` names the entry file among `files`
    /// (name, text); an `include "x.thrift"` is looked up by its last path
    /// segment among the names. Generated code embeds its IDL this way.
    pub fn parse_sources(entry: &str, files: &[(&str, &str)]) -> Result<Idl, IdlError> {
        let mut loader = Loader::default();
        let entry = loader.file_mem(entry, files, 0)?;
        loader.resolve(entry)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// The method of `Service::method` (arg1 of a thrift call, split on the
    /// first `::`).
    pub fn method(&self, arg1: &str) -> Option<(&Service, &Function)> {
        let (svc, m) = arg1.split_once("::")?;
        let s = self.service(svc)?;
        Some((s, s.functions.iter().find(|f| f.name == m)?))
    }
}

struct LoadedFile {
    stem: String,
    file: ast::File,
    /// Include stem → file index.
    includes: HashMap<String, usize>,
}

#[derive(Default)]
struct Loader {
    files: Vec<LoadedFile>,
    by_path: HashMap<PathBuf, usize>,
}

/// Includes deeper than this are a cycle or a mistake.
const MAX_INCLUDE_DEPTH: usize = 32;

impl Loader {
    fn file(&mut self, path: &Path, depth: usize) -> Result<usize, IdlError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "{}: includes nested more than {MAX_INCLUDE_DEPTH} deep",
                path.display()
            )));
        }
        let canon = path
            .canonicalize()
            .map_err(|e| err(format!("{}: {e}", path.display())))?;
        if let Some(&i) = self.by_path.get(&canon) {
            return Ok(i);
        }
        let text =
            std::fs::read_to_string(&canon).map_err(|e| err(format!("{}: {e}", path.display())))?;
        let mut file = ast::FileParser::new(
            ast::FileSource::new_with_path(canon.clone(), &text)
                .map_err(|e| err(format!("{}: {e}", path.display())))?,
        )
        .parse()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
        file.path = Arc::new(canon.clone());
        let stem = canon
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let (idx, includes) = self.push(canon.clone(), stem, file);
        let dir = canon.parent().map(Path::to_path_buf).unwrap_or_default();
        for inc in includes {
            let child = self.file(&dir.join(&inc), depth + 1)?;
            let stem = self.files[child].stem.clone();
            self.files[idx].includes.insert(stem, child);
        }
        Ok(idx)
    }

    fn file_mem(
        &mut self,
        name: &str,
        files: &[(&str, &str)],
        depth: usize,
    ) -> Result<usize, IdlError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "{name}: includes nested more than {MAX_INCLUDE_DEPTH} deep"
            )));
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        let key = PathBuf::from(base);
        if let Some(&i) = self.by_path.get(&key) {
            return Ok(i);
        }
        let Some((_, text)) = files
            .iter()
            .find(|(n, _)| n.rsplit('/').next() == Some(base))
        else {
            return Err(err(format!("{name}: not among the embedded IDL files")));
        };
        let file = ast::FileParser::new(ast::FileSource::new(text))
            .parse()
            .map_err(|e| err(format!("{name}: {e}")))?;
        let stem = base.strip_suffix(".thrift").unwrap_or(base).to_owned();
        let (idx, includes) = self.push(key, stem, file);
        for inc in includes {
            let child = self.file_mem(&inc, files, depth + 1)?;
            let stem = self.files[child].stem.clone();
            self.files[idx].includes.insert(stem, child);
        }
        Ok(idx)
    }

    /// Records a parsed file under `key`; returns its index and the paths it
    /// includes.
    fn push(&mut self, key: PathBuf, stem: String, file: ast::File) -> (usize, Vec<String>) {
        let idx = self.files.len();
        self.by_path.insert(key, idx);
        let includes = file
            .items
            .iter()
            .filter_map(|i| match i {
                ast::Item::Include(inc) => Some(inc.path.0.clone()),
                _ => None,
            })
            .collect();
        self.files.push(LoadedFile {
            stem,
            file,
            includes: HashMap::default(),
        });
        (idx, includes)
    }

    fn resolve(self, entry: usize) -> Result<Idl, IdlError> {
        Resolver::new(self, entry).run()
    }
}

/// A named item of a file.
#[derive(Clone, Copy)]
enum Named {
    Struct(usize),
    Enum(usize),
    Typedef(usize, usize),
    Service(usize, usize),
}

struct Resolver {
    loader: Loader,
    entry: usize,
    /// (file, name) → item.
    names: HashMap<(usize, String), Named>,
    idl: Idl,
}

impl Resolver {
    fn new(loader: Loader, entry: usize) -> Resolver {
        Resolver {
            loader,
            entry,
            names: HashMap::default(),
            idl: Idl::default(),
        }
    }

    fn qualified(&self, file: usize, name: &str) -> String {
        if file == self.entry {
            name.to_owned()
        } else {
            format!("{}.{name}", self.loader.files[file].stem)
        }
    }

    fn run(mut self) -> Result<Idl, IdlError> {
        // 1. Declare every named item, so structs can refer to each other.
        for f in 0..self.loader.files.len() {
            for (i, item) in self.loader.files[f].file.items.iter().enumerate() {
                let (name, named) = match item {
                    ast::Item::Struct(s) => (s.name.0.to_string(), None),
                    ast::Item::Union(s) => (s.name.0.to_string(), None),
                    ast::Item::Exception(s) => (s.name.0.to_string(), None),
                    ast::Item::Enum(e) => (e.name.0.to_string(), Some(Named::Enum(0))),
                    ast::Item::Typedef(t) => (t.alias.0.to_string(), Some(Named::Typedef(f, i))),
                    ast::Item::Service(s) => (s.name.0.to_string(), Some(Named::Service(f, i))),
                    _ => continue,
                };
                let named = match named {
                    None => {
                        let kind = match item {
                            ast::Item::Union(_) => StructKind::Union,
                            ast::Item::Exception(_) => StructKind::Exception,
                            _ => StructKind::Struct,
                        };
                        self.idl.structs.push(StructDef {
                            name: self.qualified(f, &name),
                            kind,
                            fields: Vec::new(),
                        });
                        Named::Struct(self.idl.structs.len() - 1)
                    }
                    Some(Named::Enum(_)) => {
                        let ast::Item::Enum(e) = item else {
                            continue;
                        };
                        let mut next = 0i64;
                        let mut values = Vec::with_capacity(e.values.len());
                        for v in &e.values {
                            let n = v.value.map_or(next, |c| c.0);
                            let n32 = i32::try_from(n).map_err(|_| {
                                err(format!("enum {name}: value {n} is not an i32"))
                            })?;
                            values.push((v.name.0.to_string(), n32));
                            next = n + 1;
                        }
                        self.idl.enums.push(EnumDef {
                            name: self.qualified(f, &name),
                            values,
                        });
                        Named::Enum(self.idl.enums.len() - 1)
                    }
                    Some(n) => n,
                };
                if self.names.insert((f, name.clone()), named).is_some() {
                    return Err(err(format!(
                        "{}: {name} is defined twice",
                        self.loader.files[f].file.path.display()
                    )));
                }
            }
        }
        // 2. Fields.
        let mut s_idx = 0;
        for f in 0..self.loader.files.len() {
            let n_items = self.loader.files[f].file.items.len();
            for i in 0..n_items {
                let fields = match &self.loader.files[f].file.items[i] {
                    ast::Item::Struct(s) => Some(&s.fields),
                    ast::Item::Union(s) => Some(&s.fields),
                    ast::Item::Exception(s) => Some(&s.fields),
                    _ => None,
                };
                let Some(fields) = fields else { continue };
                let fields = fields.clone();
                let owner = self.idl.structs[s_idx].name.clone();
                let resolved = self.fields(f, &owner, &fields)?;
                self.idl.structs[s_idx].fields = resolved;
                s_idx += 1;
            }
        }
        // 3. Services, flattened.
        let mut services = Vec::new();
        for f in 0..self.loader.files.len() {
            for i in 0..self.loader.files[f].file.items.len() {
                if let ast::Item::Service(s) = &self.loader.files[f].file.items[i] {
                    let name = self.qualified(f, &s.name.0);
                    let functions = self.service_functions(f, i, 0)?;
                    services.push(Service { name, functions });
                }
            }
        }
        self.idl.services = services;
        Ok(self.idl)
    }

    fn service_functions(
        &self,
        f: usize,
        i: usize,
        depth: usize,
    ) -> Result<Vec<Function>, IdlError> {
        let ast::Item::Service(s) = &self.loader.files[f].file.items[i] else {
            return Ok(Vec::new());
        };
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(format!(
                "service {}: extends nested too deep",
                s.name.0
            )));
        }
        let mut out = match &s.extends {
            Some(base) => match self.lookup(f, base)? {
                Named::Service(bf, bi) => self.service_functions(bf, bi, depth + 1)?,
                _ => {
                    return Err(err(format!(
                        "service {} extends {}, which is not a service",
                        s.name.0,
                        path_str(base)
                    )));
                }
            },
            None => Vec::new(),
        };
        for func in &s.functions {
            let what = format!("{}::{}", s.name.0, func.name.0);
            // The parser marks every argument required, written so or not;
            // peers omit arguments they do not set (a no-argument health
            // call is arg3 `00`), so arguments are never required here.
            let mut args = self.fields(f, &what, &func.arguments)?;
            for a in &mut args {
                a.required = Requiredness::Default;
            }
            let throws = self.fields(f, &what, &func.throws)?;
            let returns = self.ty(f, &what, &func.result_type, 0)?;
            out.retain(|x: &Function| x.name != *func.name.0);
            out.push(Function {
                name: func.name.0.to_string(),
                args,
                returns,
                throws,
                oneway: func.oneway,
            });
        }
        Ok(out)
    }

    fn fields(&self, f: usize, owner: &str, fields: &[ast::Field]) -> Result<Vec<Field>, IdlError> {
        let mut out = Vec::with_capacity(fields.len());
        for fd in fields {
            let id = i16::try_from(fd.id).map_err(|_| {
                err(format!(
                    "{owner}.{}: field id {} is not an i16",
                    fd.name.0, fd.id
                ))
            })?;
            if out.iter().any(|x: &Field| x.id == id) {
                return Err(err(format!("{owner}: field id {id} is used twice")));
            }
            let ty = self.ty(f, &format!("{owner}.{}", fd.name.0), &fd.ty, 0)?;
            if ty == Type::Void {
                return Err(err(format!(
                    "{owner}.{}: a field cannot be void",
                    fd.name.0
                )));
            }
            out.push(Field {
                id,
                name: fd.name.0.to_string(),
                ty,
                required: match fd.attribute {
                    ast::Attribute::Required => Requiredness::Required,
                    ast::Attribute::Optional => Requiredness::Optional,
                    ast::Attribute::Default => Requiredness::Default,
                },
            });
        }
        Ok(out)
    }

    fn ty(&self, f: usize, owner: &str, t: &ast::Type, depth: usize) -> Result<Type, IdlError> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(err(format!("{owner}: typedefs nested too deep (a cycle?)")));
        }
        Ok(match &t.0 {
            ast::Ty::Void => Type::Void,
            ast::Ty::Bool => Type::Bool,
            ast::Ty::Byte | ast::Ty::I8 => Type::I8,
            ast::Ty::I16 => Type::I16,
            ast::Ty::I32 => Type::I32,
            ast::Ty::I64 => Type::I64,
            ast::Ty::Double => Type::Double,
            ast::Ty::String => Type::String,
            ast::Ty::Binary => Type::Binary,
            ast::Ty::Uuid => return Err(err(format!("{owner}: uuid is not supported"))),
            ast::Ty::List { value, .. } => {
                Type::List(Box::new(self.ty(f, owner, value, depth + 1)?))
            }
            ast::Ty::Set { value, .. } => {
                Type::Set(Box::new(self.ty(f, owner, value, depth + 1)?))
            }
            ast::Ty::Map { key, value, .. } => Type::Map(
                Box::new(self.ty(f, owner, key, depth + 1)?),
                Box::new(self.ty(f, owner, value, depth + 1)?),
            ),
            ast::Ty::Path(p) => match self.lookup(f, p)? {
                Named::Struct(i) => Type::Struct(i),
                Named::Enum(i) => Type::Enum(i),
                Named::Typedef(tf, ti) => {
                    let ast::Item::Typedef(td) = &self.loader.files[tf].file.items[ti] else {
                        return Err(err(format!("{owner}: bad typedef")));
                    };
                    self.ty(tf, owner, &td.r#type, depth + 1)?
                }
                Named::Service(..) => {
                    return Err(err(format!(
                        "{owner}: {} is a service, not a type",
                        path_str(p)
                    )));
                }
            },
        })
    }

    fn lookup(&self, f: usize, p: &ast::Path) -> Result<Named, IdlError> {
        let segs: Vec<&str> = p.segments.iter().map(|s| &*s.0).collect();
        let found = match segs.as_slice() {
            [name] => self.names.get(&(f, (*name).to_owned())).copied(),
            [inc, name] => self.loader.files[f]
                .includes
                .get(*inc)
                .and_then(|&g| self.names.get(&(g, (*name).to_owned())).copied()),
            _ => None,
        };
        found.ok_or_else(|| {
            err(format!(
                "{}: unknown type {}",
                self.loader.files[f].file.path.display(),
                path_str(p)
            ))
        })
    }
}

fn path_str(p: &ast::Path) -> String {
    p.segments
        .iter()
        .map(|s| &*s.0)
        .collect::<Vec<_>>()
        .join(".")
}
