//! farmhash Fingerprint32, written here because the `farmhash` crate (1.1.5)
//! gets inputs of 1 to 4 bytes wrong when a byte is 0x80 or more: the
//! reference reads those bytes as signed. Checked against vectors from Google's
//! implementation in `tests/data/fingerprint32.txt`, every length branch.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// Little-endian u32 at `offset`; every caller stays in range (0 otherwise).
#[inline]
fn fetch32(data: &[u8], offset: usize) -> u32 {
    offset
        .checked_add(4)
        .and_then(|end| data.get(offset..end))
        .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
        .map_or(0, u32::from_le_bytes)
}

#[inline]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[inline]
fn mur(a: u32, h: u32) -> u32 {
    let a = a.wrapping_mul(C1).rotate_right(17).wrapping_mul(C2);
    mix19(h, a)
}

#[inline]
fn mix19(h: u32, v: u32) -> u32 {
    (h ^ v)
        .rotate_right(19)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

fn len_0_to_4(data: &[u8]) -> u32 {
    let mut b: u32 = 0;
    let mut c: u32 = 9;
    for &byte in data {
        // The reference reads each byte as a signed char.
        let v = i32::from(byte as i8) as u32;
        b = b.wrapping_mul(C1).wrapping_add(v);
        c ^= b;
    }
    fmix(mur(b, mur(data.len() as u32, c)))
}

fn len_5_to_12(data: &[u8]) -> u32 {
    let len = data.len();
    let a = (len as u32).wrapping_add(fetch32(data, 0));
    let b = (len as u32)
        .wrapping_mul(5)
        .wrapping_add(fetch32(data, len - 4));
    let c = 9u32.wrapping_add(fetch32(data, (len >> 1) & 4));
    let d = (len as u32).wrapping_mul(5);
    fmix(mur(c, mur(b, mur(a, d))))
}

fn len_13_to_24(data: &[u8]) -> u32 {
    let len = data.len();
    let a = fetch32(data, (len >> 1) - 4);
    let b = fetch32(data, 4);
    let c = fetch32(data, len - 8);
    let d = fetch32(data, len >> 1);
    let e = fetch32(data, 0);
    let f = fetch32(data, len - 4);
    let mut h = d.wrapping_mul(C1).wrapping_add(len as u32);
    let mut a = a.rotate_right(12).wrapping_add(f);
    h = mur(c, h).wrapping_add(a);
    a = a.rotate_right(3).wrapping_add(c);
    h = mur(e, h).wrapping_add(a);
    a = a.wrapping_add(f).rotate_right(12).wrapping_add(d);
    h = mur(b, h).wrapping_add(a);
    fmix(h)
}

fn len_over_24(data: &[u8]) -> u32 {
    let len = data.len();
    // The reference works on u32 lengths; inputs of 4 GiB or more wrap as there.
    let len32 = len as u32;
    let tail = |back: usize| {
        fetch32(data, len - back)
            .wrapping_mul(C1)
            .rotate_right(17)
            .wrapping_mul(C2)
    };
    let (a0, a1, a2, a3, a4) = (tail(4), tail(8), tail(16), tail(12), tail(20));
    let mut h = mix19(mix19(len32, a0), a2);
    let mut g = mix19(mix19(C1.wrapping_mul(len32), a1), a3);
    let mut f = C1
        .wrapping_mul(len32)
        .wrapping_add(a4)
        .rotate_right(19)
        .wrapping_add(113);
    // (len - 1) / 20 whole 20-byte blocks from the start; the bytes after them
    // were covered by a0..a4.
    for block in data.chunks_exact(20).take((len - 1) / 20) {
        let (a, b, c, d, e) = (
            fetch32(block, 0),
            fetch32(block, 4),
            fetch32(block, 8),
            fetch32(block, 12),
            fetch32(block, 16),
        );
        h = h.wrapping_add(a);
        g = g.wrapping_add(b);
        f = f.wrapping_add(c);
        h = mur(d, h).wrapping_add(e);
        g = mur(c, g).wrapping_add(a);
        f = mur(b.wrapping_add(e.wrapping_mul(C1)), f).wrapping_add(d);
        f = f.wrapping_add(g);
        g = g.wrapping_add(f);
    }
    g = g.rotate_right(11).wrapping_mul(C1);
    g = g.rotate_right(17).wrapping_mul(C1);
    f = f.rotate_right(11).wrapping_mul(C1);
    f = f.rotate_right(17).wrapping_mul(C1);
    h = h.wrapping_add(g).rotate_right(19);
    h = h.wrapping_mul(5).wrapping_add(0xe654_6b64);
    h = h.rotate_right(17).wrapping_mul(C1);
    h = h.wrapping_add(f).rotate_right(19);
    h = h.wrapping_mul(5).wrapping_add(0xe654_6b64);
    h.rotate_right(17).wrapping_mul(C1)
}

/// farmhash `Fingerprint32` (farmhashmk `Hash32`): a 32-bit hash that is the
/// same on every platform and never changes, as node's farmhash checksums use.
pub fn fingerprint32(data: &[u8]) -> u32 {
    match data.len() {
        0..=4 => len_0_to_4(data),
        5..=12 => len_5_to_12(data),
        13..=24 => len_13_to_24(data),
        _ => len_over_24(data),
    }
}

#[cfg(test)]
mod tests {
    use super::fingerprint32;

    fn generated(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| ((i * 31 + n * 7 + 3) & 0xff) as u8)
            .collect()
    }

    #[test]
    fn matches_reference_vectors_in_every_length_branch() {
        // [CSUM-3] farmhash32 is Fingerprint32; vectors from Google's implementation.
        let text = include_str!("../../tests/data/fingerprint32.txt");
        let mut branches = [0usize; 5];
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let input = match parts[0] {
                "len" => generated(parts[1].parse().unwrap()),
                "str" if parts[1] == "-" => Vec::new(),
                "str" => hex::decode(parts[1]).unwrap(),
                other => panic!("bad vector line {other}"),
            };
            let want = u32::from_str_radix(parts[2], 16).unwrap();
            assert_eq!(
                fingerprint32(&input),
                want,
                "input of {} bytes",
                input.len()
            );
            let branch = match input.len() {
                0..=4 => 0,
                5..=12 => 1,
                13..=24 => 2,
                25..=65518 => 3,
                _ => 4,
            };
            branches[branch] += 1;
        }
        assert!(branches.iter().all(|&n| n > 0), "{branches:?}");
    }

    #[test]
    fn high_bytes_in_short_inputs() {
        // The farmhash crate's bug: 0x80 must hash as a signed byte.
        assert_eq!(fingerprint32(&[0x80]), 0x2fc8_696b);
    }
}
