//! Key/value header lists, kept as the bytes they arrived in.
//!
//! Three places in TChannel carry a list of string pairs: transport headers
//! (`nh:1 (k~1 v~1){nh}`), init headers and thrift application headers (both
//! `nh:2 (k~2 v~2){nh}`). Decoding walks the list once to check that every
//! length fits, then keeps the raw bytes as a `Bytes` slice: no map and no
//! string is built per frame. Lookups walk the bytes again, which for the
//! handful of headers a call carries is faster than building a map.

use std::fmt;
use std::marker::PhantomData;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::wire::Reader;

/// The width of the count and length prefixes of a header list.
pub trait Width: Copy + Eq + fmt::Debug + sealed::Sealed {
    /// Bytes per prefix: 1 or 2.
    const BYTES: usize;
    /// The largest count or length a prefix can hold.
    const MAX: usize;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::W1 {}
    impl Sealed for super::W2 {}
}

/// One-byte prefixes, as in transport headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct W1;
/// Two-byte prefixes, as in init headers and thrift arg2 headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct W2;

impl Width for W1 {
    const BYTES: usize = 1;
    const MAX: usize = u8::MAX as usize;
}
impl Width for W2 {
    const BYTES: usize = 2;
    const MAX: usize = u16::MAX as usize;
}

/// A list of key/value pairs in wire order, backed by the bytes it was read from.
#[derive(Clone)]
pub struct Headers<W: Width> {
    /// `(k~W v~W){count}`, without the count prefix.
    raw: Bytes,
    count: usize,
    /// Known to follow the transport-header rules (built by `strict`), so
    /// writers need not check again.
    checked: bool,
    /// A [`Headers::push_or_poison`] did not fit: the list must not be sent.
    poisoned: bool,
    _w: PhantomData<W>,
}

impl<W: Width> PartialEq for Headers<W> {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count && self.raw == other.raw
    }
}

impl<W: Width> Eq for Headers<W> {}

/// Transport headers of call req and call res: `nh:1 (k~1 v~1){nh}`.
pub type TransportHeaders = Headers<W1>;
/// Init req / init res headers: `nh:2 (k~2 v~2){nh}`.
pub type InitHeaders = Headers<W2>;
/// Thrift arg2 application headers: `nh:2 (k~2 v~2){nh}`.
pub type ThriftHeaders = Headers<W2>;

/// The arg scheme of a call: the value of its `as` transport header
/// (spec/08-arg-schemes.md).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ArgScheme {
    /// `raw`: opaque args (the default).
    #[default]
    Raw,
    /// `json`: arg2 a JSON object of headers, arg3 a JSON value.
    Json,
    /// `thrift`: arg2 a thrift header map, arg3 a TBinaryProtocol struct.
    Thrift,
    /// Any other value, sent as it is.
    Other(std::sync::Arc<str>),
}

impl ArgScheme {
    /// The value sent as `as`.
    pub fn as_str(&self) -> &str {
        match self {
            ArgScheme::Raw => "raw",
            ArgScheme::Json => "json",
            ArgScheme::Thrift => "thrift",
            ArgScheme::Other(s) => s,
        }
    }
}

impl From<&str> for ArgScheme {
    fn from(s: &str) -> ArgScheme {
        match s {
            "raw" => ArgScheme::Raw,
            "json" => ArgScheme::Json,
            "thrift" => ArgScheme::Thrift,
            other => ArgScheme::Other(other.into()),
        }
    }
}

impl From<String> for ArgScheme {
    fn from(s: String) -> ArgScheme {
        ArgScheme::from(s.as_str())
    }
}

impl fmt::Display for ArgScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits on transport headers from the spec.
pub const MAX_TRANSPORT_HEADER_KEY_LEN: usize = 16;
/// At most this many transport headers per frame.
pub const MAX_TRANSPORT_HEADERS: usize = 128;

/// A rule of the spec that a set of transport headers breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderViolation {
    /// A key of zero length.
    #[error("header key is empty")]
    EmptyKey,
    /// The same key twice.
    #[error("header key {0:?} appears more than once")]
    DuplicateKey(String),
    /// A key longer than 16 bytes.
    #[error("header key {key:?} is {len} bytes, over the limit of {max}")]
    KeyTooLong {
        /// The key, lossily decoded.
        key: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A pair added by a builder (`CallRequest::header`,
    /// `Response::with_header`) did not fit: a key or value over 255 bytes,
    /// or over 255 pairs.
    #[error("a header key or value is over 255 bytes, or there are over 255 headers")]
    Unencodable,
    /// More headers than allowed.
    #[error("{count} headers, over the limit of {max}")]
    TooMany {
        /// How many there are.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl<W: Width> Default for Headers<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Width> Headers<W> {
    /// An empty list.
    pub const fn new() -> Self {
        Headers {
            raw: Bytes::new(),
            count: 0,
            checked: true,
            poisoned: false,
            _w: PhantomData,
        }
    }

    /// Builds a list from pairs, in the given order. Only the prefix widths are
    /// checked here; transport-header rules are checked by
    /// [`TransportHeaders::validate`].
    pub fn from_pairs<K, V, I>(pairs: I) -> Result<Self, EncodeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut raw = BytesMut::new();
        let mut count = 0usize;
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            put_prefixed::<W>(&mut raw, k, "header key")?;
            put_prefixed::<W>(&mut raw, v, "header value")?;
            count += 1;
        }
        if count > W::MAX {
            return Err(EncodeError::FieldTooLong {
                field: "header count",
                len: count,
                max: W::MAX,
            });
        }
        Ok(Headers {
            raw: raw.freeze(),
            count,
            checked: false,
            poisoned: false,
            _w: PhantomData,
        })
    }

    /// Fast path of [`Headers::read`] over raw bytes: the count prefix and the
    /// pairs, or `None` when a length does not fit (the reader then names the
    /// field). Returns the count, the pairs' bytes and what follows them.
    #[inline]
    pub(crate) fn scan(buf: &[u8]) -> Option<(usize, &[u8], &[u8])> {
        let (count, pairs) = if W::BYTES == 1 {
            let (&n, rest) = buf.split_first()?;
            (usize::from(n), rest)
        } else {
            let (n, rest) = buf.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*n)), rest)
        };
        let mut rest = pairs;
        for _ in 0..count {
            split_prefixed::<W>(&mut rest)?;
            split_prefixed::<W>(&mut rest)?;
        }
        let used = pairs.len() - rest.len();
        Some((count, &pairs[..used], rest))
    }

    /// Headers over `raw` (the pairs, without the count prefix), already
    /// scanned by [`Headers::scan`].
    #[inline]
    pub(crate) fn from_scanned(raw: Bytes, count: usize) -> Self {
        Headers {
            raw,
            count,
            checked: false,
            poisoned: false,
            _w: PhantomData,
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = if W::BYTES == 1 {
            usize::from(r.u8("header count")?)
        } else {
            usize::from(r.u16("header count")?)
        };
        let start = r.pos();
        // Fast path: walk the pairs over the raw bytes. Only when they do not
        // fit does the field-by-field reader run, to name the field and offset.
        let mut rest = r.rest_slice();
        let mut ok = true;
        for _ in 0..count {
            if split_prefixed::<W>(&mut rest).is_none() || split_prefixed::<W>(&mut rest).is_none()
            {
                ok = false;
                break;
            }
        }
        if ok {
            let used = r.remaining() - rest.len();
            r.take(used, "header list")?;
        } else {
            for _ in 0..count {
                read_prefixed::<W>(r, "header key")?;
                read_prefixed::<W>(r, "header value")?;
            }
        }
        let end = r.pos();
        Ok(Headers {
            raw: r.slice(start..end),
            count,
            checked: false,
            poisoned: false,
            _w: PhantomData,
        })
    }

    /// Parses a whole buffer as a header list (for thrift arg2). Bytes after the
    /// list are an error.
    pub fn parse(buf: &Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::detached(buf);
        let h = Self::read(&mut r)?;
        if r.remaining() != 0 {
            return Err(r.error(
                "bytes after header list",
                super::DecodeErrorKind::Truncated {
                    needed: 0,
                    remaining: r.remaining(),
                },
            ));
        }
        Ok(h)
    }

    /// Appends a pair. Fails, leaving the list as it was, when the key or
    /// the value does not fit its length prefix or the count would overflow.
    pub fn push(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), EncodeError> {
        let (k, v) = (key.as_ref(), value.as_ref());
        if self.count >= W::MAX {
            return Err(EncodeError::FieldTooLong {
                field: "header count",
                len: self.count + 1,
                max: W::MAX,
            });
        }
        let mut raw = BytesMut::with_capacity(self.raw.len() + 2 * W::BYTES + k.len() + v.len());
        raw.extend_from_slice(&self.raw);
        put_prefixed::<W>(&mut raw, k, "header key")?;
        put_prefixed::<W>(&mut raw, v, "header value")?;
        self.raw = raw.freeze();
        self.count += 1;
        self.checked = false;
        Ok(())
    }

    /// [`Headers::push`] for infallible builders: a pair that does not fit
    /// marks the list so that validation (and so sending) fails.
    pub(crate) fn push_or_poison(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        if self.push(key, value).is_err() {
            self.poisoned = true;
            self.checked = false;
        }
    }

    /// Number of pairs, duplicates included.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The pairs in wire order, as borrowed slices.
    pub fn iter(&self) -> HeaderIter<'_, W> {
        HeaderIter {
            rest: &self.raw,
            left: self.count,
            _w: PhantomData,
        }
    }

    /// The value of `key`; with duplicates, the last one (as a map would keep).
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }

    /// Like [`Headers::get`], as a `Bytes` that shares the headers' buffer.
    pub fn get_bytes(&self, key: &[u8]) -> Option<Bytes> {
        self.get(key).map(|v| {
            if v.is_empty() {
                Bytes::new()
            } else {
                self.raw.slice_ref(v)
            }
        })
    }

    /// Bytes on the wire, count prefix included.
    pub fn encoded_len(&self) -> usize {
        W::BYTES + self.raw.len()
    }

    /// Writes the count prefix and the pairs.
    pub fn encode(&self, dst: &mut impl BufMut) {
        if W::BYTES == 1 {
            dst.put_u8(self.count as u8);
        } else {
            dst.put_u16(self.count as u16);
        }
        dst.put_slice(&self.raw);
    }
}

/// What one pass over a handful of transport headers found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeaderScan<'a> {
    /// The `as` pair (key and value with their lengths), if present.
    pub(crate) as_pair: Option<&'a [u8]>,
    pub(crate) has_cn: bool,
}

impl TransportHeaders {
    /// Checks up to 8 header pairs (`raw`, `count` of them, already scanned)
    /// against the spec's rules in one pass, and finds `as` and `cn`. `None`
    /// when a rule is broken or there are more: look closer with
    /// [`TransportHeaders::validate`].
    #[inline]
    pub(crate) fn scan_few(raw: &[u8], count: usize) -> Option<HeaderScan<'_>> {
        if count > 8 {
            return None;
        }
        let mut found = HeaderScan {
            as_pair: None,
            has_cn: false,
        };
        let mut rest = raw;
        for i in 0..count {
            let start = rest;
            let k = split_prefixed::<W1>(&mut rest)?;
            split_prefixed::<W1>(&mut rest)?;
            if k.is_empty() || k.len() > MAX_TRANSPORT_HEADER_KEY_LEN {
                return None;
            }
            if i > 0 && Headers::<W1>::key_among(&raw[..raw.len() - start.len()], k) {
                return None;
            }
            if k.len() == 2 {
                if k[0] == b'a' && k[1] == b's' {
                    found.as_pair = Some(&start[..start.len() - rest.len()]);
                } else if k[0] == b'c' && k[1] == b'n' {
                    found.has_cn = true;
                }
            }
        }
        Some(found)
    }

    /// True when `key` is a key of the pairs in `raw` (known to parse).
    #[inline]
    fn key_among(mut raw: &[u8], key: &[u8]) -> bool {
        while let (Some(k), Some(_)) = (
            split_prefixed::<W1>(&mut raw),
            split_prefixed::<W1>(&mut raw),
        ) {
            if k.len() == key.len() && k == key {
                return true;
            }
        }
        false
    }

    /// One pair, encoded in `pair` (`k~1 v~1`), that follows the rules.
    pub(crate) fn from_static_pair(pair: &'static [u8]) -> TransportHeaders {
        Headers {
            raw: Bytes::from_static(pair),
            count: 1,
            checked: true,
            poisoned: false,
            _w: PhantomData,
        }
    }

    /// These headers plus `key: value`, in one new buffer; still known to
    /// follow the spec's rules when these were and `key` is a valid key
    /// not among them (so sending need not check them again).
    pub(crate) fn with_pair(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<TransportHeaders, EncodeError> {
        let mut h = self.clone();
        h.push(key, value)?;
        h.checked = self.checked
            && !key.is_empty()
            && key.len() <= MAX_TRANSPORT_HEADER_KEY_LEN
            && !Self::key_among(&self.raw, key)
            && h.count <= MAX_TRANSPORT_HEADERS;
        Ok(h)
    }

    /// Headers over `raw` that are known to follow the spec's rules.
    pub(crate) fn from_checked(raw: Bytes, count: usize) -> TransportHeaders {
        Headers {
            raw,
            count,
            checked: true,
            poisoned: false,
            _w: PhantomData,
        }
    }

    /// The one pair `key`/value as a header list of its own, sharing this
    /// list's buffer (no copy): how a response carries the request's `as`.
    pub fn pair(&self, key: &[u8]) -> Option<TransportHeaders> {
        let mut rest: &[u8] = &self.raw;
        let mut found = None;
        for _ in 0..self.count {
            let start = rest;
            let k = split_prefixed::<W1>(&mut rest)?;
            split_prefixed::<W1>(&mut rest)?;
            if k == key {
                // With duplicates the last one wins, as in `get`.
                found = Some(&start[..start.len() - rest.len()]);
            }
        }
        let pair = found?;
        Some(Headers {
            raw: self.raw.slice_ref(pair),
            count: 1,
            checked: !key.is_empty() && key.len() <= MAX_TRANSPORT_HEADER_KEY_LEN,
            poisoned: false,
            _w: PhantomData,
        })
    }

    /// Checks the spec's rules for transport headers: no empty key, no
    /// duplicate key, keys at most 16 bytes, at most 128 headers.
    pub fn validate(&self) -> Result<(), HeaderViolation> {
        if self.poisoned {
            return Err(HeaderViolation::Unencodable);
        }
        if self.checked || self.valid_few() {
            return Ok(());
        }
        self.find_violation()
    }

    /// The usual case, a handful of headers, checked in one pass (keys kept
    /// on the stack for the duplicate check). False means "look closer".
    #[inline]
    fn valid_few(&self) -> bool {
        const FEW: usize = 8;
        if self.count > FEW {
            return false;
        }
        let mut keys: [&[u8]; FEW] = [&[]; FEW];
        for (i, (k, _)) in self.iter().enumerate() {
            if k.is_empty() || k.len() > MAX_TRANSPORT_HEADER_KEY_LEN {
                return false;
            }
            if keys[..i].iter().any(|p| p.len() == k.len() && *p == k) {
                return false;
            }
            keys[i] = k;
        }
        true
    }

    #[cold]
    fn find_violation(&self) -> Result<(), HeaderViolation> {
        if self.count > MAX_TRANSPORT_HEADERS {
            return Err(HeaderViolation::TooMany {
                count: self.count,
                max: MAX_TRANSPORT_HEADERS,
            });
        }
        for (i, (k, _)) in self.iter().enumerate() {
            if k.is_empty() {
                return Err(HeaderViolation::EmptyKey);
            }
            if k.len() > MAX_TRANSPORT_HEADER_KEY_LEN {
                return Err(HeaderViolation::KeyTooLong {
                    key: String::from_utf8_lossy(k).into_owned(),
                    len: k.len(),
                    max: MAX_TRANSPORT_HEADER_KEY_LEN,
                });
            }
            if self.iter().take(i).any(|(k2, _)| k2 == k) {
                return Err(HeaderViolation::DuplicateKey(
                    String::from_utf8_lossy(k).into_owned(),
                ));
            }
        }
        Ok(())
    }

    /// Builds transport headers and checks every rule of the spec (tchan is
    /// always strict when it writes).
    pub fn strict<K, V, I>(pairs: I) -> Result<Self, EncodeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        I: IntoIterator<Item = (K, V)>,
    {
        let mut h = Self::from_pairs(pairs)?;
        h.validate()?;
        h.checked = true;
        Ok(h)
    }
}

impl<W: Width> fmt::Debug for Headers<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))),
            )
            .finish()
    }
}

/// The retry flags of the `re` transport header: what the caller allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryFlags {
    /// `n`: never retry (wins over the others).
    pub never: bool,
    /// `c`: retry on connection errors.
    pub connection_error: bool,
    /// `t`: retry on timeouts.
    pub timeout: bool,
}

impl RetryFlags {
    /// `n`: never retry.
    pub const NEVER: RetryFlags = RetryFlags {
        never: true,
        connection_error: false,
        timeout: false,
    };
    /// `c`: retry on connection errors (what a call without `re` allows).
    pub const CONNECTION_ERROR: RetryFlags = RetryFlags {
        never: false,
        connection_error: true,
        timeout: false,
    };
    /// `t`: retry on timeouts only.
    pub const TIMEOUT: RetryFlags = RetryFlags {
        never: false,
        connection_error: false,
        timeout: true,
    };
    /// `ct`: retry on connection errors and timeouts.
    pub const CONNECTION_ERROR_AND_TIMEOUT: RetryFlags = RetryFlags {
        never: false,
        connection_error: true,
        timeout: true,
    };

    /// The `re` value that says these flags: `n`, `c`, `t` or `ct` (`n`
    /// when nothing is allowed).
    pub fn value(self) -> &'static str {
        match (self.never, self.connection_error, self.timeout) {
            (true, _, _) | (false, false, false) => "n",
            (false, true, false) => "c",
            (false, false, true) => "t",
            (false, true, true) => "ct",
        }
    }

    /// Parses an `re` value by the presence of each letter; a missing or
    /// empty value means `c` ([HDR-14]).
    pub fn parse(value: Option<&[u8]>) -> RetryFlags {
        let v = value.unwrap_or(b"");
        if v.is_empty() {
            return RetryFlags {
                never: false,
                connection_error: true,
                timeout: false,
            };
        }
        let never = v.contains(&b'n');
        RetryFlags {
            never,
            connection_error: !never && v.contains(&b'c'),
            timeout: !never && v.contains(&b't'),
        }
    }
}

impl From<&str> for RetryFlags {
    /// The flags an `re` value says ([`RetryFlags::parse`]).
    fn from(value: &str) -> RetryFlags {
        RetryFlags::parse(Some(value.as_bytes()))
    }
}

/// Iterator over the pairs of a [`Headers`].
pub struct HeaderIter<'a, W: Width> {
    rest: &'a [u8],
    left: usize,
    _w: PhantomData<W>,
}

impl<'a, W: Width> Iterator for HeaderIter<'a, W> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The bytes were validated when the list was built or read.
        let k = split_prefixed::<W>(&mut self.rest)?;
        let v = split_prefixed::<W>(&mut self.rest)?;
        Some((k, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

fn split_prefixed<'a, W: Width>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, body) = if W::BYTES == 1 {
        let (&n, body) = rest.split_first()?;
        (usize::from(n), body)
    } else {
        let (n, body) = rest.split_at_checked(2)?;
        (usize::from(u16::from_be_bytes([n[0], n[1]])), body)
    };
    let (v, tail) = body.split_at_checked(len)?;
    *rest = tail;
    Some(v)
}

fn read_prefixed<W: Width>(r: &mut Reader<'_>, field: &'static str) -> Result<(), DecodeError> {
    if W::BYTES == 1 {
        r.prefixed_u8(field)?;
    } else {
        r.prefixed_u16(field)?;
    }
    Ok(())
}

fn put_prefixed<W: Width>(
    dst: &mut BytesMut,
    v: &[u8],
    field: &'static str,
) -> Result<(), EncodeError> {
    if v.len() > W::MAX {
        return Err(EncodeError::FieldTooLong {
            field,
            len: v.len(),
            max: W::MAX,
        });
    }
    if W::BYTES == 1 {
        dst.put_u8(v.len() as u8);
    } else {
        dst.put_u16(v.len() as u16);
    }
    dst.put_slice(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameType;

    #[test]
    fn transport_headers_from_the_spec_example() {
        // [HDR-1] nh:1 (k~1 v~1){nh}: 01 03 'c' 'i' 'd' 02 'h' 'i' = {cid: "hi"}
        let payload = Bytes::from_static(b"\x01\x03cid\x02hi");
        let mut r = Reader::new(&payload, FrameType::CALL_REQ);
        let h = TransportHeaders::read(&mut r).unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(h.get(b"cid"), Some(&b"hi"[..]));
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(&out[..], &payload[..]);
    }

    #[test]
    fn with_pair_appends_and_stays_checked_only_when_it_may() {
        // [HDR-4]
        let base = TransportHeaders::strict([("cn", "c"), ("as", "raw")]).unwrap();
        let h = base.with_pair(b"sk", b"user-1").unwrap();
        assert!(h.checked);
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [
                (&b"cn"[..], &b"c"[..]),
                (&b"as"[..], &b"raw"[..]),
                (&b"sk"[..], &b"user-1"[..])
            ]
        );
        assert_eq!(base.len(), 2, "the original is unchanged");
        // A duplicate key, or one too long, is caught by validation.
        let dup = base.with_pair(b"cn", b"again").unwrap();
        assert!(!dup.checked);
        assert!(matches!(
            dup.validate(),
            Err(HeaderViolation::DuplicateKey(_))
        ));
        let long = base.with_pair(&[b'k'; 17], b"v").unwrap();
        assert!(long.validate().is_err());
        // A value over 255 bytes does not fit its length prefix.
        assert!(base.with_pair(b"sk", &[b'x'; 256]).is_err());
    }

    #[test]
    fn a_value_that_runs_past_the_frame_is_an_error_at_its_offset() {
        let payload = Bytes::from_static(b"\x01\x03cid\x05hi");
        let mut r = Reader::new(&payload, FrameType::CALL_REQ);
        let e = TransportHeaders::read(&mut r).unwrap_err();
        assert_eq!(e.field(), "header value");
        assert_eq!(e.offset(), 16 + 5, "the start of the value's length");
    }

    #[test]
    fn validation_rules() {
        // [HDR-3] empty key, duplicate key, key over 16 bytes, more than 128 headers
        let ok = TransportHeaders::strict([("as", "raw"), ("cn", "me"), ("re", "")]);
        assert!(ok.is_ok());
        assert_eq!(
            TransportHeaders::strict([("", "x")]).unwrap_err(),
            EncodeError::BadHeader(HeaderViolation::EmptyKey)
        );
        let dup = TransportHeaders::from_pairs([("as", "raw"), ("as", "json")]).unwrap();
        assert_eq!(
            dup.validate(),
            Err(HeaderViolation::DuplicateKey("as".into()))
        );
        assert_eq!(dup.get(b"as"), Some(&b"json"[..]), "last value wins");
        let long = TransportHeaders::from_pairs([("k".repeat(17), "v")]).unwrap();
        assert!(matches!(
            long.validate(),
            Err(HeaderViolation::KeyTooLong { len: 17, .. })
        ));
        let sixteen = TransportHeaders::from_pairs([("k".repeat(16), "v")]).unwrap();
        assert!(sixteen.validate().is_ok());
        let many: Vec<(String, String)> =
            (0..129).map(|i| (format!("k{i}"), String::new())).collect();
        let many = TransportHeaders::from_pairs(many).unwrap();
        assert!(matches!(
            many.validate(),
            Err(HeaderViolation::TooMany { count: 129, .. })
        ));
    }

    #[test]
    fn retry_flags() {
        // [HDR-14] [DEV-22] `n` wins; c and t by presence; missing or empty means c
        let f = |v: Option<&str>| {
            let r = RetryFlags::parse(v.map(str::as_bytes));
            (r.never, r.connection_error, r.timeout)
        };
        assert_eq!(f(None), (false, true, false));
        assert_eq!(f(Some("")), (false, true, false));
        assert_eq!(f(Some("c")), (false, true, false));
        assert_eq!(f(Some("t")), (false, false, true));
        assert_eq!(f(Some("ct")), (false, true, true));
        assert_eq!(f(Some("tc")), (false, true, true));
        assert_eq!(f(Some("n")), (true, false, false));
        assert_eq!(f(Some("cnt")), (true, false, false));
        assert_eq!(f(Some("xc")), (false, true, false));
    }

    #[test]
    fn two_byte_lists_round_trip() {
        let h =
            InitHeaders::from_pairs([("host_port", "0.0.0.0:0"), ("process_name", "x")]).unwrap();
        let mut out = BytesMut::new();
        h.encode(&mut out);
        assert_eq!(&out[..2], &[0, 2]);
        let parsed = InitHeaders::parse(&out.freeze()).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(parsed.get(b"host_port"), Some(&b"0.0.0.0:0"[..]));
    }
}
