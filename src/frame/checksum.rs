//! Checksum types and the running checksum of one message.
//!
//! Checksums cover argument bytes only (never length prefixes or headers).
//! For the CRCs the value in frame N is the CRC of every arg byte in frames
//! 1..=N of the message: each frame continues from the previous frame's value.
//! Farmhash is the exception: node, the only peer that sends it, puts in each
//! frame Fingerprint32 of the last arg chunk of that frame, unchained. We verify
//! and send it the same way (spec/04-checksums.md).

use std::fmt;

/// A checksum type byte. Unknown values are kept, but a frame that carries one
/// cannot be decoded because the checksum's length is unknown.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChecksumType(pub u8);

impl ChecksumType {
    /// 0x00: no checksum (no checksum field on the wire).
    pub const NONE: ChecksumType = ChecksumType(0x00);
    /// 0x01: CRC-32/IEEE, as zlib computes it.
    pub const CRC32: ChecksumType = ChecksumType(0x01);
    /// 0x02: farmhash Fingerprint32, node's way (see the module docs).
    pub const FARMHASH32: ChecksumType = ChecksumType(0x02);
    /// 0x03: CRC-32C (Castagnoli).
    pub const CRC32C: ChecksumType = ChecksumType(0x03);

    /// Length of the checksum field on the wire, or `None` for an unknown type.
    pub fn value_len(self) -> Option<usize> {
        match self {
            ChecksumType::NONE => Some(0),
            ChecksumType::CRC32 | ChecksumType::FARMHASH32 | ChecksumType::CRC32C => Some(4),
            _ => None,
        }
    }

    /// The name used in the CLI and logs: `none`, `crc32`, `farmhash32`, `crc32c`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::NONE => "none",
            ChecksumType::CRC32 => "crc32",
            ChecksumType::FARMHASH32 => "farmhash32",
            ChecksumType::CRC32C => "crc32c",
            _ => "unknown",
        }
    }

    /// Parses a name as given by [`ChecksumType::name`].
    pub fn from_name(name: &str) -> Option<ChecksumType> {
        [
            ChecksumType::NONE,
            ChecksumType::CRC32,
            ChecksumType::FARMHASH32,
            ChecksumType::CRC32C,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

impl fmt::Debug for ChecksumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChecksumType(0x{:02x} {})", self.0, self.name())
    }
}

impl fmt::Display for ChecksumType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The running checksum of one message, frame by frame.
///
/// Feed each frame's arg chunks with [`Checksum::update`], then call
/// [`Checksum::finish_frame`] with the frame's last chunk to get the value that
/// frame carries.
#[derive(Debug, Clone)]
pub struct Checksum {
    ty: ChecksumType,
    value: u32,
}

impl Checksum {
    /// A fresh checksum of the given type, or `None` for a type tchan cannot compute.
    pub fn new(ty: ChecksumType) -> Option<Checksum> {
        ty.value_len()?;
        Some(Checksum { ty, value: 0 })
    }

    /// The type being computed.
    pub fn checksum_type(&self) -> ChecksumType {
        self.ty
    }

    /// Adds arg bytes to a chained (CRC) checksum. Farmhash and none ignore it.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        match self.ty {
            ChecksumType::CRC32 => {
                let mut h = crc32fast::Hasher::new_with_initial(self.value);
                h.update(data);
                self.value = h.finalize();
            }
            ChecksumType::CRC32C => self.value = crc32c_append(self.value, data),
            _ => {}
        }
    }

    /// [`Checksum::update`] with each non-empty part, in order.
    #[inline(always)]
    pub fn update_parts(&mut self, parts: &[&[u8]]) {
        match self.ty {
            ChecksumType::CRC32C => self.value = crc32c_parts(self.value, parts),
            ChecksumType::CRC32 => {
                let mut h = crc32fast::Hasher::new_with_initial(self.value);
                for p in parts {
                    h.update(p);
                }
                self.value = h.finalize();
            }
            _ => {}
        }
    }

    /// Ends a frame and returns the value it carries. `last_chunk` is the
    /// frame's last arg chunk (empty when the frame has none); only farmhash
    /// uses it.
    #[inline]
    pub fn finish_frame(&mut self, last_chunk: &[u8]) -> u32 {
        if self.ty == ChecksumType::FARMHASH32 {
            self.value = fingerprint32(last_chunk);
        }
        self.value
    }
}

pub use super::farmhash::fingerprint32;

/// Inputs at least this long go to the `crc32c` crate (its three-way
/// interleaved hardware loop is faster there); shorter ones, the usual args of
/// an RPC, take the direct loop below, which has no alignment prologue and
/// costs a few instructions per 8 bytes.
const SMALL_CRC32C: usize = 256;

/// CRC-32C of `data`, continuing from `crc`.
#[inline]
pub(crate) fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if data.len() < SMALL_CRC32C && std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU supports SSE 4.2 (checked just above), the only
            // requirement of a function compiled with that target feature.
            // Justified by `cargo bench --bench frame` (crc32c_small) and the
            // perf harness: the crate's entry costs about 120 instructions on
            // a 64-byte arg, this loop about 30.
            #[allow(unsafe_code)]
            return unsafe { hw::crc32c_small(crc, data) };
        }
    }
    crc32c::crc32c_append(crc, data)
}

/// CRC-32C of the parts one after the other, continuing from `crc`: one
/// call for all the args of a frame.
#[inline(always)]
pub(crate) fn crc32c_parts(crc: u32, parts: &[&[u8]]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if parts.iter().all(|p| p.len() < SMALL_CRC32C)
            && std::arch::is_x86_feature_detected!("sse4.2")
        {
            // SAFETY: as in `crc32c_append`: SSE 4.2 is there.
            #[allow(unsafe_code)]
            return unsafe { hw::crc32c_small_parts(crc, parts) };
        }
    }
    parts.iter().fold(crc, |c, p| crc32c::crc32c_append(c, p))
}

#[cfg(target_arch = "x86_64")]
mod hw {
    use std::arch::x86_64::{_mm_crc32_u8, _mm_crc32_u16, _mm_crc32_u32, _mm_crc32_u64};

    /// [`crc32c_small`] over each part in turn, in one call.
    #[target_feature(enable = "sse4.2")]
    pub(super) fn crc32c_small_parts(crc: u32, parts: &[&[u8]]) -> u32 {
        let mut c = crc;
        for p in parts {
            c = crc32c_small(c, p);
        }
        c
    }

    /// CRC-32C with the SSE 4.2 instruction, 8 bytes at a time (unaligned
    /// loads are fine on x86_64), then 4, 2 and 1.
    #[target_feature(enable = "sse4.2")]
    #[inline]
    pub(super) fn crc32c_small(crc: u32, data: &[u8]) -> u32 {
        let mut c = u64::from(!crc);
        let mut rest = data;
        // Four words per turn: the instruction has a latency of 3 but a
        // throughput of 1, and the loop overhead is paid once per 32 bytes.
        while let Some((block, tail)) = rest.split_first_chunk::<32>() {
            let w = |i: usize| {
                u64::from_le_bytes([
                    block[i],
                    block[i + 1],
                    block[i + 2],
                    block[i + 3],
                    block[i + 4],
                    block[i + 5],
                    block[i + 6],
                    block[i + 7],
                ])
            };
            c = _mm_crc32_u64(c, w(0));
            c = _mm_crc32_u64(c, w(8));
            c = _mm_crc32_u64(c, w(16));
            c = _mm_crc32_u64(c, w(24));
            rest = tail;
        }
        while let Some((word, tail)) = rest.split_first_chunk::<8>() {
            c = _mm_crc32_u64(c, u64::from_le_bytes(*word));
            rest = tail;
        }
        let mut c = c as u32;
        if let Some((word, tail)) = rest.split_first_chunk::<4>() {
            c = _mm_crc32_u32(c, u32::from_le_bytes(*word));
            rest = tail;
        }
        if let Some((word, tail)) = rest.split_first_chunk::<2>() {
            c = _mm_crc32_u16(c, u16::from_le_bytes(*word));
            rest = tail;
        }
        if let Some(&b) = rest.first() {
            c = _mm_crc32_u8(c, b);
        }
        !c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_frame(ty: ChecksumType, chunks: &[&[u8]]) -> u32 {
        let mut c = Checksum::new(ty).unwrap();
        for ch in chunks {
            c.update(ch);
        }
        c.finish_frame(chunks.last().copied().unwrap_or(b""))
    }

    #[test]
    fn check_values() {
        // [CSUM-2] [DEV-4] [DEV-6] 0x01 is CRC-32/IEEE (not Adler-32), 0x03 is CRC-32C;
        // [DEV-7] real check values, not the upstream example's placeholders
        assert_eq!(one_frame(ChecksumType::CRC32, &[b"123456789"]), 0xCBF4_3926);
        assert_eq!(
            one_frame(ChecksumType::CRC32C, &[b"123456789"]),
            0xE306_9283
        );
        assert_eq!(
            one_frame(ChecksumType::CRC32, &[b"echo", b"hello", b"world"]),
            0x9DEF_1EC0
        );
        assert_eq!(
            one_frame(ChecksumType::CRC32C, &[b"echo", b"hello", b"world"]),
            0x26D7_A49B
        );
        assert_eq!(
            one_frame(ChecksumType::CRC32, &[b"", b"hello", b"world"]),
            0xF9EB_20AD
        );
        assert_eq!(one_frame(ChecksumType::NONE, &[b"abc"]), 0);
    }

    #[test]
    fn crcs_chain_across_frames() {
        // [CSUM-6] frame N carries the CRC of all arg bytes of frames 1..=N
        for ty in [ChecksumType::CRC32, ChecksumType::CRC32C] {
            let mut c = Checksum::new(ty).unwrap();
            c.update(b"1234");
            c.finish_frame(b"1234");
            c.update(b"56789");
            assert_eq!(c.finish_frame(b"56789"), one_frame(ty, &[b"123456789"]));
        }
    }

    #[test]
    fn farmhash_is_last_chunk_only_and_unchained() {
        // [CSUM-7] node's rule: Fingerprint32 of the last chunk of the frame
        let mut c = Checksum::new(ChecksumType::FARMHASH32).unwrap();
        c.update(b"echo");
        c.update(b"hello");
        assert_eq!(c.finish_frame(b"hello"), fingerprint32(b"hello"));
        assert_eq!(c.finish_frame(b""), fingerprint32(b""));
    }

    #[test]
    fn the_small_input_path_matches_the_crate_at_every_length() {
        let data: Vec<u8> = (0..600u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in 0..data.len() {
            for start in [0usize, 1, 3] {
                let d = &data[start.min(len)..len];
                assert_eq!(
                    crc32c_append(0x1234_5678, d),
                    crc32c::crc32c_append(0x1234_5678, d),
                    "len {} start {start}",
                    d.len()
                );
            }
        }
    }

    #[test]
    fn parts_chain_like_one_buffer() {
        let data: Vec<u8> = (0..700u32).map(|i| (i * 7 + 1) as u8).collect();
        for cut in [0usize, 1, 5, 64, 255, 256, 300, 699] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                crc32c_parts(7, &[a, &[], b]),
                crc32c::crc32c_append(7, &data),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn unknown_types_have_no_length() {
        assert_eq!(ChecksumType(4).value_len(), None);
        assert!(Checksum::new(ChecksumType(9)).is_none());
        assert_eq!(
            ChecksumType::from_name("crc32c"),
            Some(ChecksumType::CRC32C)
        );
    }
}
