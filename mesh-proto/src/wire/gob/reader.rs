//! Gob's primitives read from a byte cursor: the layer every other reader stands on.

use super::{GobError, Result};

/// A cursor over bytes with gob's primitive readers. Never reads past its end.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Reads one byte; `what` names the item being read, for the error.
    pub(super) fn byte(&mut self, what: &'static str) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(GobError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// Borrows the next `n` bytes; `what` names the item being read, for the error.
    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GobError::Truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads an unsigned integer.
    pub fn uint(&mut self) -> Result<u64> {
        let b = self.byte("an unsigned integer")?;
        if b < 0x80 {
            return Ok(b as u64);
        }
        let n = (b as i8).unsigned_abs();
        if n > 8 {
            return Err(GobError::BadUint(n));
        }
        let bytes = self.take(n as usize, "an unsigned integer")?;
        Ok(bytes.iter().fold(0u64, |v, &b| (v << 8) | b as u64))
    }

    /// Reads a signed integer.
    pub fn int(&mut self) -> Result<i64> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 { !(u >> 1) as i64 } else { (u >> 1) as i64 })
    }

    /// Reads a bool (any non-zero value is true, as in Go).
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.uint()? != 0)
    }

    /// Reads a length-prefixed string or byte slice, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = self.uint()?;
        self.check_len("string or byte slice", len)?;
        self.take(len as usize, "a string or byte slice")
    }

    /// Reads a count of items that each occupy at least one byte.
    pub(super) fn count(&mut self, what: &'static str) -> Result<usize> {
        let n = self.uint()?;
        self.check_len(what, n)?;
        Ok(n as usize)
    }

    /// Refuses a length or count beyond the bytes left, before anything is sized by it.
    pub(super) fn check_len(&self, what: &'static str, len: u64) -> Result<()> {
        if len > self.remaining() as u64 {
            return Err(GobError::TooLong { what, len, remaining: self.remaining() });
        }
        Ok(())
    }
}
