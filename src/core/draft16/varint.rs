//! The two integer encodings: QUIC's 2-bit-prefix varint (draft 16 and earlier) and the
//! leading-ones "vi64" of draft 17+ (what moq-transport 0.17 writes).

use super::WireError;

/// Which draft's integer encoding a byte string uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ints {
    /// QUIC variable-length integers (RFC 9000 §16): 1, 2, 4 or 8 bytes, values below 2^62.
    Quic,
    /// Draft 17+ vi64: the count of leading 1 bits gives the length (1 to 9 bytes), any u64.
    Vi64,
}

/// The largest value a QUIC varint holds.
pub(crate) const QUIC_MAX: u64 = (1 << 62) - 1;

/// A read position over one complete byte string (a message payload, a header).
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Short(n - self.remaining()));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// One integer in `ints`' encoding.
    pub(crate) fn int(&mut self, ints: Ints) -> Result<u64, WireError> {
        let first = *self.bytes.get(self.pos).ok_or(WireError::Short(1))?;
        let len = encoded_len_from_first(ints, first);
        let raw = self.take(len)?;
        Ok(match ints {
            Ints::Quic => {
                let mut value = u64::from(raw[0] & 0x3f);
                for b in &raw[1..] {
                    value = (value << 8) | u64::from(*b);
                }
                value
            }
            Ints::Vi64 => match len {
                9 => u64::from_be_bytes(raw[1..9].try_into().expect("8 bytes")),
                8 => raw[1..8].iter().fold(0, |v, b| (v << 8) | u64::from(*b)),
                n => {
                    let mask = 0xffu8 >> n; // n leading bits are the tag (n-1 ones, one zero)
                    raw[1..]
                        .iter()
                        .fold(u64::from(raw[0] & mask), |v, b| (v << 8) | u64::from(*b))
                }
            },
        })
    }
}

/// How many bytes an integer whose first byte is `first` takes.
pub(crate) fn encoded_len_from_first(ints: Ints, first: u8) -> usize {
    match ints {
        Ints::Quic => 1 << (first >> 6),
        Ints::Vi64 => (first.leading_ones() as usize + 1).min(9),
    }
}

/// Append `value` in `ints`' encoding (the shortest form).
pub(crate) fn put_int(out: &mut Vec<u8>, ints: Ints, value: u64) -> Result<(), WireError> {
    match ints {
        Ints::Quic => {
            if value < 1 << 6 {
                out.push(value as u8);
            } else if value < 1 << 14 {
                out.extend_from_slice(&((value as u16) | 0x4000).to_be_bytes());
            } else if value < 1 << 30 {
                out.extend_from_slice(&((value as u32) | 0x8000_0000).to_be_bytes());
            } else if value <= QUIC_MAX {
                out.extend_from_slice(&(value | 0xc000_0000_0000_0000).to_be_bytes());
            } else {
                return Err(WireError::TooLarge(value));
            }
        }
        Ints::Vi64 => {
            // Bytes needed: 1 holds 7 bits, n (2..=8) hold 7n bits, 9 hold 64.
            let bits = 64 - value.leading_zeros() as usize;
            let len = if bits <= 56 {
                bits.max(1).div_ceil(7)
            } else {
                9
            };
            match len {
                1 => out.push(value as u8),
                9 => {
                    out.push(0xff);
                    out.extend_from_slice(&value.to_be_bytes());
                }
                n => {
                    let bytes = value.to_be_bytes();
                    let tag = !(0xffu8 >> (n - 1)); // n-1 leading ones, then a zero bit
                    let first = if n == 8 { 0 } else { bytes[8 - n] };
                    out.push(tag | first);
                    out.extend_from_slice(&bytes[9 - n..]);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use moq_transport::coding::Encode;

    fn round_trip(ints: Ints, value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_int(&mut out, ints, value).unwrap();
        let mut cursor = Cursor::new(&out);
        assert_eq!(cursor.int(ints).unwrap(), value, "{ints:?} {value}");
        assert!(cursor.is_empty());
        out
    }

    #[test]
    fn quic_varints_match_rfc_9000_examples() {
        // RFC 9000 §A.1.
        assert_eq!(
            round_trip(Ints::Quic, 151_288_809_941_952_652),
            [0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]
        );
        assert_eq!(
            round_trip(Ints::Quic, 494_878_333),
            [0x9d, 0x7f, 0x3e, 0x7d]
        );
        assert_eq!(round_trip(Ints::Quic, 15_293), [0x7b, 0xbd]);
        assert_eq!(round_trip(Ints::Quic, 37), [0x25]);
        let mut out = Vec::new();
        assert!(put_int(&mut out, Ints::Quic, QUIC_MAX + 1).is_err());
    }

    #[test]
    fn vi64_matches_moq_transport_at_every_length() {
        let mut values = vec![0u64, 1, 127, 128, 16_383, 16_384, u64::MAX];
        for bits in [21, 28, 35, 42, 49, 56, 63] {
            values.push((1u64 << bits) - 1);
            values.push(1u64 << bits);
        }
        for value in values {
            let ours = round_trip(Ints::Vi64, value);
            let mut theirs = Vec::new();
            value.encode(&mut theirs).unwrap();
            assert_eq!(ours, theirs, "{value}");
        }
    }
}
