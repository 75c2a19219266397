//! Thrift values as JSON, through an [`Idl`]: a JSON object encoded as a
//! struct in TBinaryProtocol, and a struct decoded back to JSON.
//!
//! The JSON mapping (SCHEME-15): structs as objects keyed by field name;
//! unions as an object with one field; binary as base64; i64 as exact
//! numbers; enums by name (a number accepted on input, printed when it names
//! no value); lists and sets as arrays; maps with string keys as objects,
//! other maps as arrays of `[key, value]`.
//!
//! Decoding goes through Apache thrift's binary protocol with every limit
//! set to the input's length: recursion at most [`MAX_DEPTH`], no string or
//! container longer than the whole input, so a claimed length never makes
//! it allocate more than the input's own size (SCHEME-17).

use base64::Engine;
use serde_json::{Map, Value};
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier,
    TMapIdentifier, TOutputProtocol, TSetIdentifier, TStructIdentifier, TType,
};

use super::schema::{Field, Idl, Requiredness, StructKind, Type};

/// Deepest nesting of structs and containers decoded.
pub const MAX_DEPTH: usize = 64;

/// A value that could not be encoded or decoded, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn verr(msg: impl Into<String>) -> ValueError {
    ValueError(msg.into())
}

fn ttype(t: &Type) -> TType {
    match t {
        Type::Void => TType::Void,
        Type::Bool => TType::Bool,
        Type::I8 => TType::I08,
        Type::I16 => TType::I16,
        Type::I32 | Type::Enum(_) => TType::I32,
        Type::I64 => TType::I64,
        Type::Double => TType::Double,
        Type::String | Type::Binary => TType::String,
        Type::List(_) => TType::List,
        Type::Set(_) => TType::Set,
        Type::Map(..) => TType::Map,
        Type::Struct(_) => TType::Struct,
    }
}

fn perr(e: thrift::Error) -> ValueError {
    verr(e.to_string())
}

// ===== encoding =====

/// Encodes a JSON object as the struct with `fields` (an args struct, say).
/// A member the struct does not have, a missing required field or a value
/// of the wrong shape is an error naming it.
pub fn encode_fields(
    idl: &Idl,
    what: &str,
    fields: &[Field],
    v: &Value,
) -> Result<Vec<u8>, ValueError> {
    let mut out = Vec::new();
    {
        let mut p = TBinaryOutputProtocol::new(&mut out, true);
        write_struct(idl, what, fields, StructKind::Struct, v, &mut p)?;
        p.flush().map_err(perr)?;
    }
    Ok(out)
}

fn write_struct(
    idl: &Idl,
    what: &str,
    fields: &[Field],
    kind: StructKind,
    v: &Value,
    p: &mut dyn TOutputProtocol,
) -> Result<(), ValueError> {
    let obj = match v {
        Value::Object(o) => o,
        Value::Null if fields.is_empty() => &Map::new(),
        other => return Err(verr(format!("{what}: expected an object, got {other}"))),
    };
    for k in obj.keys() {
        if !fields.iter().any(|f| f.name == *k) {
            return Err(verr(format!("{what}: no field named {k:?}")));
        }
    }
    if kind == StructKind::Union && obj.len() != 1 {
        return Err(verr(format!(
            "{what}: a union takes exactly one field, got {}",
            obj.len()
        )));
    }
    p.write_struct_begin(&TStructIdentifier::new(what))
        .map_err(perr)?;
    for f in fields {
        let Some(fv) = obj.get(&f.name) else {
            if f.required == Requiredness::Required {
                return Err(verr(format!(
                    "{what}: required field {:?} is missing",
                    f.name
                )));
            }
            continue;
        };
        if fv.is_null() && f.required != Requiredness::Required {
            continue;
        }
        let here = format!("{what}.{}", f.name);
        p.write_field_begin(&TFieldIdentifier::new(f.name.as_str(), ttype(&f.ty), f.id))
            .map_err(perr)?;
        write_value(idl, &here, &f.ty, fv, p)?;
        p.write_field_end().map_err(perr)?;
    }
    p.write_field_stop().map_err(perr)?;
    p.write_struct_end().map_err(perr)
}

fn int(what: &str, v: &Value, lo: i64, hi: i64) -> Result<i64, ValueError> {
    v.as_i64().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| {
        verr(format!(
            "{what}: expected an integer in {lo}..={hi}, got {v}"
        ))
    })
}

fn write_value(
    idl: &Idl,
    what: &str,
    t: &Type,
    v: &Value,
    p: &mut dyn TOutputProtocol,
) -> Result<(), ValueError> {
    match t {
        Type::Void => Err(verr(format!("{what}: void has no value"))),
        Type::Bool => p
            .write_bool(
                v.as_bool()
                    .ok_or_else(|| verr(format!("{what}: expected a bool, got {v}")))?,
            )
            .map_err(perr),
        Type::I8 => p
            .write_i8(int(what, v, i8::MIN.into(), i8::MAX.into())? as i8)
            .map_err(perr),
        Type::I16 => p
            .write_i16(int(what, v, i16::MIN.into(), i16::MAX.into())? as i16)
            .map_err(perr),
        Type::I32 => p
            .write_i32(int(what, v, i32::MIN.into(), i32::MAX.into())? as i32)
            .map_err(perr),
        Type::I64 => p.write_i64(int(what, v, i64::MIN, i64::MAX)?).map_err(perr),
        Type::Double => p
            .write_double(
                v.as_f64()
                    .ok_or_else(|| verr(format!("{what}: expected a number, got {v}")))?,
            )
            .map_err(perr),
        Type::String => p
            .write_string(
                v.as_str()
                    .ok_or_else(|| verr(format!("{what}: expected a string, got {v}")))?,
            )
            .map_err(perr),
        Type::Binary => {
            let s = v
                .as_str()
                .ok_or_else(|| verr(format!("{what}: expected a base64 string, got {v}")))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| verr(format!("{what}: not base64: {e}")))?;
            p.write_bytes(&b).map_err(perr)
        }
        Type::Enum(e) => {
            let def = &idl.enums[*e];
            let n = match v {
                Value::String(s) => def
                    .value_of(s)
                    .ok_or_else(|| verr(format!("{what}: {} has no value {s:?}", def.name)))?,
                other => int(what, other, i32::MIN.into(), i32::MAX.into())? as i32,
            };
            p.write_i32(n).map_err(perr)
        }
        Type::List(et) | Type::Set(et) => {
            let arr = v
                .as_array()
                .ok_or_else(|| verr(format!("{what}: expected an array, got {v}")))?;
            let n =
                i32::try_from(arr.len()).map_err(|_| verr(format!("{what}: too many elements")))?;
            if matches!(t, Type::List(_)) {
                p.write_list_begin(&TListIdentifier::new(ttype(et), n))
                    .map_err(perr)?;
            } else {
                p.write_set_begin(&TSetIdentifier::new(ttype(et), n))
                    .map_err(perr)?;
            }
            for (i, x) in arr.iter().enumerate() {
                write_value(idl, &format!("{what}[{i}]"), et, x, p)?;
            }
            if matches!(t, Type::List(_)) {
                p.write_list_end().map_err(perr)
            } else {
                p.write_set_end().map_err(perr)
            }
        }
        Type::Map(kt, vt) => {
            let pairs: Vec<(Value, &Value)> = match (v, &**kt) {
                (Value::Object(o), Type::String) => o
                    .iter()
                    .map(|(k, x)| (Value::String(k.clone()), x))
                    .collect(),
                (Value::Array(a), _) => a
                    .iter()
                    .map(|e| match e.as_array().map(Vec::as_slice) {
                        Some([k, x]) => Ok((k.clone(), x)),
                        _ => Err(verr(format!(
                            "{what}: expected [key, value] pairs, got {e}"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(verr(format!("{what}: expected a map, got {v}"))),
            };
            let n = i32::try_from(pairs.len())
                .map_err(|_| verr(format!("{what}: too many entries")))?;
            p.write_map_begin(&TMapIdentifier::new(ttype(kt), ttype(vt), n))
                .map_err(perr)?;
            for (k, x) in &pairs {
                write_value(idl, &format!("{what} key"), kt, k, p)?;
                write_value(idl, &format!("{what}[{k}]"), vt, x, p)?;
            }
            p.write_map_end().map_err(perr)
        }
        Type::Struct(s) => {
            let def = &idl.structs[*s];
            write_struct(idl, what, &def.fields, def.kind, v, p)
        }
    }
}

// ===== decoding =====

/// Where a value being decoded sits, for error messages. It is put into
/// words only when an error is reported: building a label for every value
/// would cost time quadratic in the input (a long map key in the label of
/// every element under it).
#[derive(Clone, Copy)]
enum At<'a> {
    Name(&'a str),
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, i32),
    Key(&'a At<'a>),
    Entry(&'a At<'a>, &'a Value),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Name(s) => f.write_str(s),
            At::Field(p, n) => write!(f, "{p}.{n}"),
            At::Index(p, i) => write!(f, "{p}[{i}]"),
            At::Key(p) => write!(f, "{p} key"),
            At::Entry(p, k) => {
                // A key is shown cut short: it came from the input.
                let k = k.to_string();
                let cut: String = k.chars().take(32).collect();
                let more = if cut.len() < k.len() { "…" } else { "" };
                write!(f, "{p}[{cut}{more}]")
            }
        }
    }
}

/// Decodes `bytes` as the struct with `fields`, whole: bytes after the
/// struct are an error. Unknown field ids are skipped; a known id with the
/// wrong wire type is an error.
pub fn decode_fields(
    idl: &Idl,
    what: &str,
    fields: &[Field],
    bytes: &[u8],
) -> Result<Value, ValueError> {
    let limit = bytes.len();
    let config = thrift::TConfiguration::builder()
        .max_recursion_depth(Some(MAX_DEPTH))
        .max_container_size(Some(limit))
        .max_string_size(Some(limit))
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit))
        .build()
        .map_err(perr)?;
    let mut input = bytes;
    let v = {
        let mut p = TBinaryInputProtocol::with_config(&mut input, true, config);
        read_struct(idl, &At::Name(what), fields, &mut p, 0)?
    };
    if !input.is_empty() {
        return Err(verr(format!(
            "{what}: {} bytes after the struct",
            input.len()
        )));
    }
    Ok(v)
}

fn read_struct(
    idl: &Idl,
    what: &At<'_>,
    fields: &[Field],
    p: &mut dyn TInputProtocol,
    depth: usize,
) -> Result<Value, ValueError> {
    if depth >= MAX_DEPTH {
        return Err(verr(format!("{what}: nested deeper than {MAX_DEPTH}")));
    }
    p.read_struct_begin().map_err(perr)?;
    let mut out = Map::new();
    loop {
        let id = p.read_field_begin().map_err(perr)?;
        if id.field_type == TType::Stop {
            break;
        }
        let fid = id.id.unwrap_or(i16::MIN);
        match fields.iter().find(|f| f.id == fid) {
            Some(f) => {
                let want = ttype(&f.ty);
                if id.field_type != want {
                    return Err(verr(format!(
                        "{what}.{}: field {fid} has wire type {}, expected {want}",
                        f.name, id.field_type
                    )));
                }
                let v = read_value(idl, &At::Field(what, &f.name), &f.ty, p, depth + 1)?;
                out.insert(f.name.clone(), v);
            }
            None => p.skip(id.field_type).map_err(perr)?,
        }
        p.read_field_end().map_err(perr)?;
    }
    p.read_struct_end().map_err(perr)?;
    if let Some(f) = fields
        .iter()
        .find(|f| f.required == Requiredness::Required && !out.contains_key(&f.name))
    {
        return Err(verr(format!(
            "{what}: required field {:?} is missing",
            f.name
        )));
    }
    Ok(Value::Object(out))
}

fn read_value(
    idl: &Idl,
    what: &At<'_>,
    t: &Type,
    p: &mut dyn TInputProtocol,
    depth: usize,
) -> Result<Value, ValueError> {
    if depth >= MAX_DEPTH {
        return Err(verr(format!("{what}: nested deeper than {MAX_DEPTH}")));
    }
    Ok(match t {
        Type::Void => Value::Null,
        Type::Bool => Value::Bool(p.read_bool().map_err(perr)?),
        Type::I8 => p.read_i8().map_err(perr)?.into(),
        Type::I16 => p.read_i16().map_err(perr)?.into(),
        Type::I32 => p.read_i32().map_err(perr)?.into(),
        Type::I64 => p.read_i64().map_err(perr)?.into(),
        Type::Double => {
            let d = p.read_double().map_err(perr)?;
            serde_json::Number::from_f64(d)
                .map(Value::Number)
                .ok_or_else(|| verr(format!("{what}: {d} has no JSON form")))?
        }
        Type::String => Value::String(p.read_string().map_err(perr)?),
        Type::Binary => Value::String(
            base64::engine::general_purpose::STANDARD.encode(p.read_bytes().map_err(perr)?),
        ),
        Type::Enum(e) => {
            let n = p.read_i32().map_err(perr)?;
            match idl.enums[*e].name_of(n) {
                Some(name) => Value::String(name.to_owned()),
                None => n.into(),
            }
        }
        Type::List(et) | Type::Set(et) => {
            let (elem, n) = if matches!(t, Type::List(_)) {
                let l = p.read_list_begin().map_err(perr)?;
                (l.element_type, l.size)
            } else {
                let s = p.read_set_begin().map_err(perr)?;
                (s.element_type, s.size)
            };
            let want = ttype(et);
            if n > 0 && elem != want {
                return Err(verr(format!(
                    "{what}: elements of wire type {elem}, expected {want}"
                )));
            }
            // No capacity from the claimed count: each element is read (and
            // fails at the end of the input) before it is kept.
            let mut arr = Vec::new();
            for i in 0..n {
                arr.push(read_value(idl, &At::Index(what, i), et, p, depth + 1)?);
            }
            if matches!(t, Type::List(_)) {
                p.read_list_end().map_err(perr)?;
            } else {
                p.read_set_end().map_err(perr)?;
            }
            Value::Array(arr)
        }
        Type::Map(kt, vt) => {
            let m = p.read_map_begin().map_err(perr)?;
            let (wk, wv) = (ttype(kt), ttype(vt));
            if m.size > 0 && (m.key_type != Some(wk) || m.value_type != Some(wv)) {
                return Err(verr(format!("{what}: map of the wrong wire types")));
            }
            let string_keys = **kt == Type::String;
            let mut obj = Map::new();
            let mut arr = Vec::new();
            for _ in 0..m.size {
                let k = read_value(idl, &At::Key(what), kt, p, depth + 1)?;
                let v = read_value(idl, &At::Entry(what, &k), vt, p, depth + 1)?;
                match (string_keys, k) {
                    (true, Value::String(k)) => {
                        obj.insert(k, v);
                    }
                    (_, k) => arr.push(Value::Array(vec![k, v])),
                }
            }
            p.read_map_end().map_err(perr)?;
            if string_keys {
                Value::Object(obj)
            } else {
                Value::Array(arr)
            }
        }
        Type::Struct(s) => {
            let def = &idl.structs[*s];
            let v = read_struct(idl, what, &def.fields, p, depth)?;
            if def.kind == StructKind::Union && v.as_object().is_some_and(|o| o.len() != 1) {
                return Err(verr(format!(
                    "{what}: a union with other than one field set"
                )));
            }
            v
        }
    })
}
