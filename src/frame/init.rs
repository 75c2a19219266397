//! Init req (0x01) and init res (0x02): `version:2 nh:2 (key~2 value~2){nh}`.

use bytes::{BufMut, Bytes};

use super::error::DecodeError;
use super::headers::InitHeaders;
use super::wire::Reader;
use super::{FrameHeader, HEADER_LEN};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// Init header: where this process can be reached (`host:port`, or `0.0.0.0:0`).
pub const HOST_PORT: &str = "host_port";
/// Init header: a free-form process name.
pub const PROCESS_NAME: &str = "process_name";
/// Init header: implementation language.
pub const TCHANNEL_LANGUAGE: &str = "tchannel_language";
/// Init header: version of the language runtime.
pub const TCHANNEL_LANGUAGE_VERSION: &str = "tchannel_language_version";
/// Init header: version of the TChannel library.
pub const TCHANNEL_VERSION: &str = "tchannel_version";

/// Splits a `host_port` value at its last colon: `10.0.0.1:4040`,
/// `[fd00::1]:4040` (brackets removed) or `localhost:4040` ([INIT-6]).
/// Returns `None` without a colon, with an empty host, or with a port that
/// is not a number.
pub fn parse_host_port(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    (!host.is_empty()).then_some((host, port))
}

/// True for `0.0.0.0:0`: the sender does not listen ([INIT-7]).
pub fn is_ephemeral(host_port: &str) -> bool {
    host_port == "0.0.0.0:0"
}

/// The body of init req and init res (the [`super::Frame`] variant says which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    /// Message id.
    pub id: u32,
    /// Protocol version (2).
    pub version: u16,
    /// Init headers, in wire order.
    pub headers: InitHeaders,
    /// Bytes after the headers, kept so the frame re-encodes exactly.
    pub trailing: Bytes,
}

impl Init {
    /// Decodes an init payload.
    pub fn decode(header: FrameHeader, payload: &Bytes) -> Result<Init, DecodeError> {
        let mut r = Reader::new(payload, header.frame_type);
        let version = r.u16("version")?;
        let headers = InitHeaders::read(&mut r)?;
        Ok(Init {
            id: header.id,
            version,
            headers,
            trailing: r.rest(),
        })
    }

    /// Total frame size, header included.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 2 + self.headers.encoded_len() + self.trailing.len()
    }

    pub(crate) fn encode_payload(&self, dst: &mut impl BufMut) {
        dst.put_u16(self.version);
        self.headers.encode(dst);
        dst.put_slice(&self.trailing);
    }

    /// The name of the first required header (`host_port`, `process_name`)
    /// that is missing, if any.
    pub fn missing_required_header(&self) -> Option<&'static str> {
        [HOST_PORT, PROCESS_NAME]
            .into_iter()
            .find(|k| self.headers.get(k.as_bytes()).is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_splits_at_the_last_colon() {
        // [INIT-6]
        assert_eq!(parse_host_port("10.0.0.1:4040"), Some(("10.0.0.1", 4040)));
        assert_eq!(parse_host_port("[fd00::1]:4040"), Some(("fd00::1", 4040)));
        assert_eq!(parse_host_port("localhost:4040"), Some(("localhost", 4040)));
        assert_eq!(parse_host_port("fd00::1:4040"), None, "IPv6 needs brackets");
        assert_eq!(parse_host_port("10.0.0.1"), None);
        assert_eq!(parse_host_port(":80"), None);
        assert_eq!(parse_host_port("h:port"), None);
        // [INIT-7] 0.0.0.0:0 means the sender does not listen.
        assert!(is_ephemeral("0.0.0.0:0"));
        assert!(!is_ephemeral("127.0.0.1:0"));
    }
}
