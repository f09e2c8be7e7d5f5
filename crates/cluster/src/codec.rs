//! Byte-level helpers shared by the vector clock and sibling formats: LEB128 varints and
//! length-prefixed byte strings.
//!
//! Decoding never panics and never allocates more than the input could hold: a length or count
//! read from the input is checked against the bytes that remain before anything is reserved.

use crate::error::DecodeError;

pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub(crate) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A cursor over untrusted bytes. Every error names the offset where decoding stopped.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn malformed(&self, at: usize, reason: &'static str) -> DecodeError {
        DecodeError::Malformed { offset: at, reason }
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated {
            offset: self.pos,
            what,
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// A LEB128 varint of at most 10 bytes that fits in 64 bits, in its shortest form (so every
    /// value has exactly one encoding and decoding then encoding gives back the same bytes).
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8(what).map_err(|_| DecodeError::Truncated {
                offset: start,
                what,
            })?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(self.malformed(start, "varint overflows 64 bits"));
            }
            v |= bits << (7 * i);
            if b < 0x80 {
                if i > 0 && b == 0 {
                    return Err(self.malformed(start, "varint not in shortest form"));
                }
                return Ok(v);
            }
        }
        Err(self.malformed(start, "varint longer than 10 bytes"))
    }

    /// A count of items that each take at least `min_item_bytes`; refused when the input cannot
    /// hold that many, so callers may reserve capacity for it.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_item_bytes: usize,
    ) -> Result<usize, DecodeError> {
        let start = self.pos;
        let n = self.varint(what)?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item_bytes) <= self.remaining() => Ok(n),
            _ => Err(DecodeError::Truncated {
                offset: start,
                what,
            }),
        }
    }

    pub(crate) fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let len = self.varint(what)?;
        let truncated = DecodeError::Truncated {
            offset: start,
            what,
        };
        let len = usize::try_from(len).map_err(|_| truncated.clone())?;
        if len > self.remaining() {
            return Err(truncated);
        }
        let b = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(b)
    }

    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let start = self.pos;
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.malformed(start, "string is not UTF-8"))
    }

    /// Refuses bytes left over after a complete value.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_every_width() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, u64::MAX >> shift] {
                let mut buf = Vec::new();
                put_varint(&mut buf, v);
                let mut r = Reader::new(&buf);
                assert_eq!(r.varint("v"), Ok(v));
                assert_eq!(r.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn varint_rejects_overflow_padding_and_truncation() {
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&too_big).varint("v"),
            Err(DecodeError::Malformed {
                offset: 0,
                reason: "varint overflows 64 bits"
            })
        );
        assert_eq!(
            Reader::new(&[0x80, 0x00]).varint("v"),
            Err(DecodeError::Malformed {
                offset: 0,
                reason: "varint not in shortest form"
            })
        );
        assert_eq!(
            Reader::new(&[0x80]).varint("v"),
            Err(DecodeError::Truncated {
                offset: 0,
                what: "v"
            })
        );
    }

    #[test]
    fn lengths_and_counts_are_checked_against_the_input() {
        assert_eq!(
            Reader::new(&[0x05, 1, 2]).bytes("b"),
            Err(DecodeError::Truncated {
                offset: 0,
                what: "b"
            })
        );
        // A huge count with few bytes behind it is refused before anything is reserved.
        let mut buf = Vec::new();
        put_varint(&mut buf, u64::MAX);
        assert_eq!(
            Reader::new(&buf).count("n", 1),
            Err(DecodeError::Truncated {
                offset: 0,
                what: "n"
            })
        );
        assert_eq!(Reader::new(&[0x02, 9, 9]).count("n", 1), Ok(2));
    }
}
